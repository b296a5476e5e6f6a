"""Updates: signed bundles install into the other slot and are kept only once the new
system confirms its own health; bad signatures are refused; a system that never becomes
healthy is abandoned for the previous one."""

import shutil
import subprocess
import time

import pytest

from conftest import BOOT_DEADLINE_S, OUT, WORK
from rig.appliance import text

SERVE_PORT = 8080


@pytest.fixture(scope="module")
def bundles(rig):
    """Bundles served over HTTP from the internet side, as an update server would."""
    d = WORK / "bundles"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    shutil.copy(OUT / "edge-appliance.raucb", d / "good.raucb")
    shutil.copy(OUT / "hil" / "never-healthy.raucb", d / "never-healthy.raucb")
    shutil.copy(OUT / "hil" / "foreign-signer.raucb", d / "foreign.raucb")
    # One flipped byte in the middle of the payload.
    data = bytearray((d / "good.raucb").read_bytes())
    data[len(data) // 2] ^= 0x01
    (d / "tampered.raucb").write_bytes(bytes(data))
    server = subprocess.Popen(
        ["ip", "netns", "exec", rig.inet.netns, "python3", "-m", "http.server", str(SERVE_PORT),
         "--bind", rig.inet.ip, "--directory", str(d)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    yield f"http://{rig.inet.ip}:{SERVE_PORT}"
    server.terminate()
    server.wait(timeout=5)


def fetch(appliance, url: str, name: str) -> str:
    path = f"/data/{name}"
    appliance.run_check(f"rm -f /data/*.raucb; wget -q -O {path} {url}/{name}", timeout=120)
    return path


def booted_slot(appliance) -> str:
    out = appliance.run_check("sed -n 's/.*rauc.slot=\\([AB]\\).*/\\1/p' /proc/cmdline")
    return text(out[-1]).strip()


def grubenv(appliance) -> dict:
    out = appliance.run_check("grub-editenv /boot/efi/EFI/BOOT/grubenv list")
    return dict(line.split("=", 1) for line in out if "=" in line)


@pytest.mark.parametrize("name", ["tampered.raucb", "foreign.raucb"])
def test_bundle_with_bad_signature_is_refused(booted, bundles, name):
    before = grubenv(booted)
    path = fetch(booted, bundles, name)
    out = booted.run_check(
        f"rauc install {path} >/run/log/install.log 2>&1; echo rc=$?; grep -h LastError /run/log/install.log",
        timeout=180)
    print("\n".join(out))
    assert out[0] != "rc=0", f"{name} was installed: {out}"
    # Refused for the right reason: its signature or its verity hashes, not some other failure.
    reason = " ".join(out[1:]).lower()
    assert any(w in reason for w in ("signature", "verity", "hash", "input/output", "verif")), reason
    assert grubenv(booted) == before, "a refused bundle changed the boot selection"


def test_update_installs_into_other_slot_and_is_marked_good_after_health(booted, bundles):
    slot = booted_slot(booted)
    other = "B" if slot == "A" else "A"
    path = fetch(booted, bundles, "good.raucb")
    t0 = time.monotonic()
    booted.run_check(f"rauc install {path} >/run/log/install.log 2>&1 || (cat /run/log/install.log; false)",
                     timeout=400)
    print(f"\ninstall took {time.monotonic() - t0:.0f}s")
    env = grubenv(booted)
    assert env.get("ORDER", "").startswith(other), env
    assert env.get(f"{other}_OK") == "1"
    booted.run_check("rm -f /data/*.raucb")
    booted.lost_console()
    booted.console.sendline("reboot")
    assert booted.wait_boot_start() == other
    uptime, new_slot = booted.wait_ready(BOOT_DEADLINE_S)
    assert new_slot == other
    # Marked good only after the health check: the try flag is cleared by mark-good.
    env = grubenv(booted)
    assert env.get(f"{other}_TRY") == "0" and env.get(f"{other}_OK") == "1", env


def test_update_never_marked_good_falls_back(booted, bundles):
    slot = booted_slot(booted)
    other = "B" if slot == "A" else "A"
    path = fetch(booted, bundles, "never-healthy.raucb")
    booted.run_check(f"rauc install {path} >/run/log/install.log 2>&1 || (cat /run/log/install.log; false)",
                     timeout=400)
    booted.run_check("rm -f /data/*.raucb")
    booted.lost_console()
    booted.console.sendline("reboot")
    assert booted.wait_boot_start() == other
    # The new system's edged never gets healthy: its slot is never confirmed, the health
    # check gives up and reboots, and GRUB skips the unconfirmed slot.
    booted.expect(rf"slot {other} not healthy", 200)
    assert booted.wait_boot_start() == slot
    uptime, back = booted.wait_ready(BOOT_DEADLINE_S)
    assert back == slot
    env = grubenv(booted)
    assert env.get(f"{other}_TRY") == "1", env
    # GRUB's last resort, should every slot be tried and unconfirmed, is the slot confirmed last.
    assert env.get("LAST_GOOD") == slot, env
