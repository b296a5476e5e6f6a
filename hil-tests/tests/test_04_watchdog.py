"""The hardware watchdog resets the appliance when edged hangs, and it comes back."""

from conftest import BOOT_DEADLINE_S


def test_watchdog_resets_when_edged_hangs(booted):
    booted.run_check("test -c /dev/watchdog && pidof edged >/dev/null")
    booted.lost_console()
    booted.console.sendline("kill -STOP $(pidof edged)")
    # i6300esb with heartbeat=5: the feeder stops within a couple of seconds of edged not
    # answering, the first stage expires after 5 s and the second resets the machine.
    booted.expect(r"Welcome to GRUB|BdsDxe", 60)
    uptime, slot = booted.wait_ready(BOOT_DEADLINE_S)
    assert booted.run_check("pidof edged")
    print(f"\nback after watchdog reset: ready at uptime {uptime:.1f}s on slot {slot}")
