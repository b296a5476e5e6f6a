"""Two wires to the appliance, built from network namespaces.

rig namespace:   br-inet -- tap-inet (appliance eth0)     br-lan -- tap-lan (appliance eth1)
                    |                                        |
inet namespace:  eth0 198.51.100.20/24 ("internet")   lan namespace: eth0 10.20.0.20/24 ("internal")

qemu runs inside the rig namespace, so nothing is added to the host's own network and
deleting the three namespaces removes every device the rig created.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

PREFIX = "edgehil"


def sh(*args: str, check: bool = True, netns: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    cmd = list(args)
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class Side:
    name: str  # "inet" or "lan"
    netns: str
    address: str  # the rig's client address, with prefix length
    appliance: str  # the appliance's address on this side, without prefix

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]


class Rig:
    """Creates the namespaces on enter and removes them on exit, whatever happened."""

    def __init__(self, tag: str | None = None, inet_if: str | None = None, lan_if: str | None = None):
        """inet_if/lan_if: on a real rig, the host interfaces cabled to the appliance's ports;
        they are moved into the namespaces instead of creating veths to a qemu."""
        tag = tag or str(os.getpid())
        self.physical = {"inet": inet_if, "lan": lan_if} if inet_if and lan_if else None
        self.rig = f"{PREFIX}-rig-{tag}"
        self.inet = Side("inet", f"{PREFIX}-inet-{tag}", "198.51.100.20/24", "198.51.100.10")
        self.lan = Side("lan", f"{PREFIX}-lan-{tag}", "10.20.0.20/24", "10.20.0.10")

    def __enter__(self) -> "Rig":
        try:
            self.create()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    def create(self) -> None:
        if self.physical:
            self._create_physical()
            return
        for ns in (self.rig, self.inet.netns, self.lan.netns):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        for side in (self.inet, self.lan):
            br, tap, port = f"br-{side.name}", f"tap-{side.name}", f"v-{side.name}"
            sh("ip", "link", "add", br, "type", "bridge", netns=self.rig)
            sh("ip", "tuntap", "add", tap, "mode", "tap", netns=self.rig)
            sh("ip", "link", "add", port, "netns", self.rig, "type", "veth", "peer", "name", "eth0",
               "netns", side.netns)
            for dev in (tap, port):
                sh("ip", "link", "set", dev, "master", br, netns=self.rig)
                sh("ip", "link", "set", dev, "up", netns=self.rig)
            sh("ip", "link", "set", br, "up", netns=self.rig)
            sh("ip", "addr", "add", side.address, "dev", "eth0", netns=side.netns)
            sh("ip", "link", "set", "eth0", "up", netns=side.netns)

    def _create_physical(self) -> None:
        for side in (self.inet, self.lan):
            dev = self.physical[side.name]
            sh("ip", "netns", "add", side.netns)
            sh("ip", "link", "set", "lo", "up", netns=side.netns)
            sh("ip", "link", "set", dev, "netns", side.netns)
            # The same name inside as the veth of the qemu rig, so tests need not care.
            sh("ip", "link", "set", dev, "name", "eth0", netns=side.netns)
            sh("ip", "addr", "add", side.address, "dev", "eth0", netns=side.netns)
            sh("ip", "link", "set", "eth0", "up", netns=side.netns)

    def _release_physical(self) -> None:
        # Give the interfaces back under their own names before the namespaces go.
        for side in (self.inet, self.lan):
            dev = self.physical[side.name]
            sh("ip", "link", "set", "eth0", "down", netns=side.netns, check=False)
            sh("ip", "link", "set", "eth0", "name", dev, netns=side.netns, check=False)
            sh("ip", "link", "set", dev, "netns", "1", netns=side.netns, check=False)

    def destroy(self) -> None:
        if self.physical:
            self._release_physical()
        for ns in (self.inet.netns, self.lan.netns, self.rig):
            sh("ip", "netns", "del", ns, check=False)


def remove_stale() -> None:
    """Deletes namespaces left by an earlier run that was killed before it could clean up."""
    out = sh("ip", "netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(f"{PREFIX}-"):
            sh("ip", "netns", "del", name, check=False)
