"""The appliance as the tests see it: power, the serial console, and a shell on it.

Only labgrid protocols are used (PowerProtocol, ConsoleProtocol, ShellDriver), so the same
code drives qemu here and a real appliance on a rig.
"""

from __future__ import annotations

import re
import time

READY = r"edge-health: all roles ready at ([0-9.]+)s"
MARKED_GOOD = r"edge-health: slot ([AB]) marked good"
MARK_GOOD_FAILED = r"edge-health: slot ([AB]) mark-good failed[^\r\n]*"


def text(value) -> str:
    """Console matches are bytes; tests compare text."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Appliance:
    def __init__(self, target):
        self.target = target
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
