"""The hardware watchdog resets the appliance when edged hangs, and it comes back."""

from conftest import BOOT_DEADLINE_S


def test_watchdog_resets_when_edged_hangs(booted):
    booted.run_check("test -c /dev/watchdog && pidof edged >/dev/null")
    # A warm reset of the same machine: the proof below is the reset flag the watchdog
    # device keeps across a reset, which a power cycle would clear.
    with booted.warm_resets():
        booted.lost_console()
        booted.console.sendline("kill -STOP $(pidof edged)")
        # The feeder stops once edged has not answered for 10 s; i6300esb (heartbeat=5) then
        # resets the machine about 5 s later.
        # The firmware's first screen clear (or its boot line) shows the reset happened.
        booted.expect(r"\x1b\[2J|BdsDxe|Welcome to GRUB", 60)
        booted.wait_boot_start()
        # The new boot names the watchdog as the cause of the reset.
        booted.expect(r"rcS: the previous reset was by the hardware watchdog", BOOT_DEADLINE_S)
        uptime, slot = booted.wait_ready(BOOT_DEADLINE_S)
    assert booted.run_check("pidof edged")
    print(f"\nback after watchdog reset: ready at uptime {uptime:.1f}s on slot {slot}")
