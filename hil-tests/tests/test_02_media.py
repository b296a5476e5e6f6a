"""Media through the appliance: a TURN client on the internet side relays to a peer on the
internal side (coturn's test tools as the independent implementation)."""

import json
import re
import subprocess
import time

import pytest

from rig.netns import sh


def require_av_edge(appliance) -> None:
    """The A/V Edge must be serving for media tests; until edged wires the role in, the
    tests are expected failures with the reason, not silent passes."""
    out = appliance.run_check("edgectl --json status")
    status = json.loads("\n".join(out))
    health = {r["role"]: r["health"]["state"] for r in status["roles"]}
    if health.get("av_edge") not in ("ready", "degraded"):
        pytest.xfail(f"A/V Edge is {health.get('av_edge', 'absent')} in this edged build")


def demo_password(appliance) -> str:
    out = appliance.run_check("grep -ho 'demo relay user: demo / [^ \"]*' /run/log/edged.log | tail -n 1")
    m = re.search(r"demo / (\S+)", out[-1] if out else "")
    assert m, "edged logged no demo relay user"
    return m.group(1)


def test_stun_binding_from_internet(booted, rig):
    require_av_edge(booted)
    r = sh("turnutils_stunclient", "-p", "3478", rig.inet.appliance, netns=rig.inet.netns, check=False, timeout=20)
    print(r.stdout[-400:])
    assert rig.inet.ip in r.stdout, f"no reflexive address in the STUN answer: {r.stdout} {r.stderr}"


def test_turn_relay_internet_to_internal(booted, rig):
    require_av_edge(booted)
    password = demo_password(booted)
    peer = subprocess.Popen(["ip", "netns", "exec", rig.lan.netns, "turnutils_peer", "-L", rig.lan.ip, "-p", "3480"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        r = sh("turnutils_uclient", "-u", "demo", "-w", password, "-r", "edge.local", "-p", "3478",
               "-e", rig.lan.ip, "-r", "3480", "-m", "2", "-n", "50", "-l", "170", "-z", "5", "-c",
               rig.inet.appliance, netns=rig.inet.netns, check=False, timeout=60)
    finally:
        peer.terminate()
        peer.wait(timeout=5)
    text = r.stdout + r.stderr
    print(text[-800:])
    sent = re.search(r"Total transmit time is", text)
    lost = re.search(r"Total lost packets (\d+) \(([0-9.]+)%\)", text)
    if not lost:
        pytest.fail(f"the TURN client did not finish a relay session: {text[-600:]}")
    assert sent
    assert float(lost.group(2)) < 20.0, f"relay lost {lost.group(2)}% of packets"
