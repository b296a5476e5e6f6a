"""Chooses KVM where it really works, TCG otherwise.

/dev/kvm existing is not enough: on some hosts it rejects `-cpu host` or hangs guests. The
probe boots the appliance kernel with no root filesystem; it panics at once and, with
-no-reboot and panic=-1, qemu exits. Seeing the panic within the time limit proves KVM runs
guests here.
"""

from __future__ import annotations

import os
import subprocess


def probe_kvm(kernel: str, timeout: float = 20) -> bool:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) or not os.path.exists(kernel):
        return False
    cmd = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults",
           "-display", "none", "-no-reboot", "-serial", "stdio", "-kernel", kernel,
           "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent"]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=timeout, text=True, errors="replace")
    except (subprocess.TimeoutExpired, OSError):
        return False
    return "Kernel panic" in out.stdout


def choose(kernel: str) -> tuple[str, str]:
    """Returns (accelerator, cpu model) for the appliance, honouring LG_QEMU_ACCEL if set."""
    forced = os.environ.get("LG_QEMU_ACCEL")
    if forced:
        return forced, os.environ.get("LG_QEMU_CPU", "host" if forced == "kvm" else "qemu64")
    if probe_kvm(kernel):
        return "kvm", "host"
    return "tcg", "qemu64"


if __name__ == "__main__":
    import sys

    accel, cpu = choose(sys.argv[1] if len(sys.argv) > 1 else "")
    print(f"{accel} {cpu}")
