"""Fixtures of the HIL suite: one rig (namespaces, qemu, a fresh image) per session.

The tests run in file order against one appliance, as an operator would meet it: first
boot, traffic, power cuts, watchdog, then updates. Every test bounds its own time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rig import accel, netns
from rig.appliance import Appliance

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = REPO / "images" / "out"
WORK = HERE / ".work"
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")

# labgrid resolves the environment file's LG_* templates when pytest configures it, which
# happens after this module is imported: decide them here.
os.environ.setdefault("LG_WORK", str(WORK))
os.environ.setdefault("LG_RIG_NETNS", f"{netns.PREFIX}-rig-{os.getpid()}")
_accel, _cpu = accel.choose(str(OUT / "hil" / "vmlinuz"))
os.environ["LG_QEMU_ACCEL"], os.environ["LG_QEMU_CPU"] = _accel, _cpu
ACCEL = _accel

# Boot deadlines: the product target is 15 s to all roles ready; TCG emulation here is
# several times slower than hardware, so the test deadline is generous and the measured time
# is reported against the target.
BOOT_TARGET_S = 15.0
BOOT_DEADLINE_S = float(os.environ.get("HIL_BOOT_DEADLINE", "150" if ACCEL == "tcg" else "45"))


def reap_qemu() -> None:
    pids = WORK / "qemu.pids"
    if not pids.exists():
        return
    for line in pids.read_text().split():
        try:
            os.kill(int(line), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    pids.unlink()


def pytest_sessionstart(session):
    image = OUT / "edge-appliance.img"
    if not image.exists():
        pytest.exit(f"{image} is missing: run `make image` (images/build-image.sh) first", returncode=2)
    reap_qemu()
    netns.remove_stale()
    WORK.mkdir(exist_ok=True)
    for name in ("appliance.img", "OVMF_VARS.fd"):
        (WORK / name).unlink(missing_ok=True)
    subprocess.run(["cp", "--sparse=always", str(image), str(WORK / "appliance.img")], check=True)
    shutil.copy(OVMF_VARS, WORK / "OVMF_VARS.fd")


def pytest_sessionfinish(session, exitstatus):
    reap_qemu()
    netns.remove_stale()


@pytest.fixture(scope="session")
def rig(env):
    tag = os.environ["LG_RIG_NETNS"].rsplit("-", 1)[-1]
    # A real rig names the host interfaces cabled to the appliance (env/rig-example.yaml).
    options = (env.config.data.get("options") or {}) if env else {}
    inet_if, lan_if = options.get("rig_inet_interface"), options.get("rig_lan_interface")
    with netns.Rig(tag, inet_if, lan_if) as r:
        # The internal side answers the relay's external address through the appliance.
        netns.sh("ip", "route", "add", "default", "via", r.lan.appliance, netns=r.lan.netns)
        yield r


@pytest.fixture(scope="session")
def appliance(rig, target):
    # On the qemu rig a guest reboot is a power cycle of the emulator; emulated firmware
    # may still stall at a boot (Appliance.wait_boot_start): only the qemu rig under TCG
    # recovers from that, and reports each recovery.
    # The stall time is at most the boot deadline (45 s under KVM, where nothing recovers);
    # HIL_FIRMWARE_STALL_S shortens it, to exercise the recovery itself.
    stall_after = float(os.environ.get("HIL_FIRMWARE_STALL_S", min(60.0, BOOT_DEADLINE_S)))
    a = Appliance(target, recover_firmware_stalls=ACCEL == "tcg", stall_after=stall_after)
    yield a
    try:
        a.power_cut()
    finally:
        reap_qemu()


@pytest.fixture(scope="session")
def booted(appliance, record_testsuite_property):
    """The appliance after its first boot from the fresh image, with the boot time measured."""
    t0 = appliance.power_on()
    uptime, slot = appliance.wait_ready(BOOT_DEADLINE_S)
    wall = time.monotonic() - t0
    record_testsuite_property("first_boot_seconds", f"{wall:.1f}")
    appliance.first_boot = (wall, uptime, slot)
    return appliance


def pytest_report_header(config):
    return [f"edge HIL: accelerator {ACCEL} (cpu {os.environ['LG_QEMU_CPU']}), boot deadline {BOOT_DEADLINE_S:.0f}s"]
