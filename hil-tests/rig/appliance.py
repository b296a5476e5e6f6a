"""The appliance as the tests see it: power, the serial console, and a shell on it.

Only labgrid protocols are used (PowerProtocol, ConsoleProtocol, ShellDriver), so the same
code drives qemu here and a real appliance on a rig.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager

import pexpect

READY = r"edge-health: all roles ready at ([0-9.]+)s"
MARKED_GOOD = r"edge-health: slot ([AB]) marked good"
MARK_GOOD_FAILED = r"edge-health: slot ([AB]) mark-good failed[^\r\n]*"
# GRUB names the slot it boots: the first line of a boot that is the appliance's own.
BOOT_START = r"edge: booting slot ([AB])"
# Matches nothing: an expect with it only reads the console until its timeout.
NEVER = r"(?!)"


def text(value) -> str:
    """Console matches are bytes; tests compare text."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Appliance:
    # QMP resets one wait_boot_start may make before it gives up (emulated rig only).
    MAX_FIRMWARE_RESETS = 3

    # How long a guest reboot may take on the emulated rig before the emulator exits (edged
    # stops its roles, filesystems sync); longer means the emulator is wedged.
    REBOOT_EXIT_S = 180

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
        # On the qemu rig, power_on sets the emulator's reboot action to shutdown (what
        # `-no-reboot` sets at start): a guest reboot ends the emulator, and the rig starts it again on the same disk and
        # firmware variables, as a power cycle would. Warm resets of emulated OVMF under TCG
        # stalled now and then (README); only the watchdog test needs one (warm_resets()).
        self.reboot_power_cycles = hasattr(self.power, "monitor_command")

    # --- power -------------------------------------------------------------------------------
    def power_on(self) -> float:
        """Powers on; returns the wall-clock moment power was applied."""
        self.target.activate(self.power)
        self.target.activate(self.console)
        self.power.on()
        self.powered = True
        t0 = time.monotonic()
        if self.reboot_power_cycles:
            self.power.monitor_command("set-action", {"reboot": "shutdown"})
        return t0

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
        """After a reboot or reset: waits until GRUB names the slot it boots, and returns it.

        On the qemu rig a guest reboot ends the emulator (see __init__): this waits for that,
        then powers it on again. A power-on is a cold start of the emulated firmware.

        Under TCG emulation the emulated UEFI firmware now and then stalled after a warm
        reset, before GRUB had chosen a slot (the console stopped after OVMF's screen clears
        or at "Welcome to GRUB!", never on hardware or under KVM). Only the watchdog test
        still resets warm (warm_resets()); should the firmware stall there, the qemu rig
        resets the machine once more over QMP, as a person would press reset, and says so in
        the test output (the watchdog's reset flag survives a reset). A stall after a power
        cycle is recovered by another power cycle. No kernel of the appliance's has started
        at that point. One case is not covered: GRUB saves its boot counting just before it
        prints the slot line, so a stall between the two makes the retried boot skip that
        slot, and the callers' slot assertions then fail rather than pass. The rig tries up
        to MAX_FIRMWARE_RESETS times per boot. A real rig has no such recovery: there a
        stall is a failure."""
        if self.reboot_power_cycles:
            self._power_cycle_after_reboot()
        wait = self.stall_after
        for _ in range(self.MAX_FIRMWARE_RESETS):
            try:
                return text(self.expect(BOOT_START, wait).group(1))
            except pexpect.TIMEOUT:
                if not self.recover_firmware_stalls or not hasattr(self.power, "monitor_command"):
                    raise
            self.firmware_recoveries += 1
            how = "power-cycling" if self.reboot_power_cycles else "resetting it over QMP"
            print(f"\nrig: the emulated firmware stalled for {wait:g} s after a "
                  f"{'power-on' if self.reboot_power_cycles else 'reset'}; {how} "
                  f"(recovery {self.firmware_recoveries})")
            if self.reboot_power_cycles:
                self._restart_emulator()
            else:
                self.power.monitor_command("system_reset")
            # After a restart of the rig's own, as long as the first recovery always waited.
            wait = max(self.stall_after, 120)
        return text(self.expect(BOOT_START, wait).group(1))

    def _power_cycle_after_reboot(self) -> None:
        """Waits until the rebooting guest has ended the emulator, reading its console
        meanwhile (the guest's last lines must not back up), then powers on again. An
        emulator that has not ended within REBOOT_EXIT_S is killed, and said so."""
        child = self.power._child  # labgrid's QEMUDriver keeps its process here
        deadline = time.monotonic() + self.REBOOT_EXIT_S
        while child is not None and child.poll() is None and time.monotonic() < deadline:
            try:
                self.console.expect(NEVER, timeout=1)
            except pexpect.TIMEOUT:
                pass
        if child is not None and child.poll() is None:
            print(f"\nrig: the emulator did not end within {self.REBOOT_EXIT_S} s of the "
                  "guest's reboot; killing it")
        self._restart_emulator()

    def _restart_emulator(self) -> None:
        """Ends the emulator without asking it (it may have ended already, or be wedged, so
        a QMP quit could wait forever) and starts it again on the same disk and firmware
        variables: a power cycle."""
        self._drop_shell()
        child = self.power._child
        if child is not None:
            if child.poll() is None:
                child.kill()
            child.wait()
        # labgrid's off() would ask the ended emulator to quit: tell the driver instead.
        self.power._child = None
        self.power.status = 0
        self.powered = False
        self.target.deactivate(self.console)
        self.power_on()

    @contextmanager
    def warm_resets(self):
        """Within this block a reset of the appliance is a warm reset of the same emulator
        (the watchdog test: its proof is the reset flag the watchdog device keeps across a
        reset, which a new emulator would not have). A real rig always resets warm."""
        if not self.reboot_power_cycles:
            yield
            return
        self.power.monitor_command("set-action", {"reboot": "reset"})
        self.reboot_power_cycles = False
        try:
            yield
        finally:
            self.reboot_power_cycles = True
            if self.powered:
                self.power.monitor_command("set-action", {"reboot": "shutdown"})

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
