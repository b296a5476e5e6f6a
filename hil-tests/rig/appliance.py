"""The appliance as the tests see it: power, the serial console, and a shell on it.

Only labgrid protocols are used (PowerProtocol, ConsoleProtocol, ShellDriver), so the same
code drives qemu here and a real appliance on a rig.
"""

from __future__ import annotations

import re
import time

import pexpect

READY = r"edge-health: all roles ready at ([0-9.]+)s"
MARKED_GOOD = r"edge-health: slot ([AB]) marked good"
MARK_GOOD_FAILED = r"edge-health: slot ([AB]) mark-good failed[^\r\n]*"
# GRUB names the slot it boots: the first line of a boot that is the appliance's own.
BOOT_START = r"edge: booting slot ([AB])"


def text(value) -> str:
    """Console matches are bytes; tests compare text."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Appliance:
    # QMP resets one wait_boot_start may make before it gives up (emulated rig only).
    MAX_FIRMWARE_RESETS = 3

    def __init__(self, target, recover_firmware_stalls: bool = False, stall_after: float = 60):
        self.target = target
        # Only the emulated rig (qemu under TCG) sets this; see wait_boot_start.
        self.recover_firmware_stalls = recover_firmware_stalls
        self.stall_after = stall_after
        self.firmware_recoveries = 0
        self.power = target.get_driver("PowerProtocol", activate=False)
        self.console = target.get_driver("ConsoleProtocol", activate=False)
        self.shell_driver = target.get_driver("ShellDriver", activate=False)
        self.powered = False

    # --- power -------------------------------------------------------------------------------
    def power_on(self) -> float:
        """Powers on; returns the wall-clock moment power was applied."""
        self.target.activate(self.power)
        self.target.activate(self.console)
        self.power.on()
        self.powered = True
        return time.monotonic()

    def power_cut(self) -> None:
        """Removes power at once: no shutdown, no sync (qemu: QMP quit)."""
        self._drop_shell()
        if self.powered:
            self.power.off()
        self.powered = False
        # A fresh console connection belongs to the next power-on.
        self.target.deactivate(self.console)

    # --- console -----------------------------------------------------------------------------
    def expect(self, pattern: str, timeout: float) -> re.Match:
        """Waits for a console line matching pattern; fails the test after timeout seconds."""
        _, _, match, _ = self.console.expect(pattern, timeout=timeout)
        return match

    def wait_boot_start(self) -> str:
        """After a reset: waits until GRUB names the slot it boots, and returns it.

        Under TCG emulation the emulated UEFI firmware now and then stalls after a warm
        reset, before GRUB has chosen a slot (seen here: the console stops after OVMF's
        screen clears or at "Welcome to GRUB!", in about one HIL run in two, never on
        hardware or under KVM). The qemu rig then resets the machine once more over QMP,
        as a person would press reset, and says so in the test output. No kernel of the
        appliance's has started at that point, and the watchdog's reset flag survives a
        reset. One case is not covered: GRUB saves its boot counting just before it prints
        the slot line, so a stall between the two makes the retried boot skip that slot, and
        the callers' slot assertions then fail rather than pass. The firmware has stalled
        again right after such a reset (GRUB's screen cleared, then nothing), so the rig
        tries up to MAX_FIRMWARE_RESETS times per boot. A real rig has no such recovery:
        there a stall is a failure."""
        wait = self.stall_after
        for _ in range(self.MAX_FIRMWARE_RESETS):
            try:
                return text(self.expect(BOOT_START, wait).group(1))
            except pexpect.TIMEOUT:
                if not self.recover_firmware_stalls or not hasattr(self.power, "monitor_command"):
                    raise
            self.firmware_recoveries += 1
            print(f"\nrig: the emulated firmware stalled for {wait:g} s after a reset; "
                  f"resetting it over QMP (recovery {self.firmware_recoveries})")
            self.power.monitor_command("system_reset")
            # After a reset of the rig's own, as long as the first recovery always waited.
            wait = max(self.stall_after, 120)
        return text(self.expect(BOOT_START, wait).group(1))

    def wait_ready(self, timeout: float) -> tuple[float, str]:
        """Waits until the appliance reports every role ready and its slot marked good.
        Returns (uptime the appliance reported, slot)."""
        uptime = float(text(self.expect(READY, timeout).group(1)))
        _, _, match, _ = self.console.expect([MARKED_GOOD, MARK_GOOD_FAILED], timeout=60)
        assert b"marked good" in match.group(0), f"the appliance could not confirm its slot: {text(match.group(0))}"
        return uptime, text(match.group(1))

    # --- shell -------------------------------------------------------------------------------
    def shell(self):
        self.target.activate(self.shell_driver)
        return self.shell_driver

    def _drop_shell(self) -> None:
        self.target.deactivate(self.shell_driver)

    def run(self, cmd: str, timeout: float = 30) -> tuple[list[str], int]:
        out, _, code = self.shell().run(cmd, timeout=timeout)
        return out, code

    def run_check(self, cmd: str, timeout: float = 30) -> list[str]:
        out, code = self.run(cmd, timeout)
        assert code == 0, f"`{cmd}` exited {code}: {out}"
        return out

    def lost_console(self) -> None:
        """The appliance is rebooting (watchdog, reboot command): the shell is gone."""
        self._drop_shell()
