"""A hard power cut while configuration changes are being committed loses none that were
acknowledged."""

import time

from conftest import BOOT_DEADLINE_S
from rig.appliance import text

COMMITS = 400


def test_power_cut_during_commits_keeps_acknowledged_changes(booted):
    booted.lost_console()
    # Each commit that edgectl acknowledged is announced on the console right after the
    # acknowledgement; the power cut lands in the middle of the stream.
    booted.console.sendline(
        f"(i=1; while [ $i -le {COMMITS} ]; do edgectl config set appliance.name cut-$i >/dev/null "
        f"&& echo ACKED-$((i*1)); i=$((i+1)); done) &"
    )
    booted.expect(r"ACKED-5\b", 60)
    # Follow the acknowledgements for a moment, then cut power without warning.
    last_acked = 5
    until = time.monotonic() + 2.0
    while time.monotonic() < until:
        try:
            m = booted.expect(r"ACKED-(\d+)", 0.5)
        except Exception:  # noqa: BLE001 - a quiet half second is fine, keep following
            continue
        last_acked = max(last_acked, int(text(m.group(1))))
    booted.power_cut()
    print(f"\npower cut after acknowledged commit {last_acked}")

    booted.power_on()
    booted.wait_ready(BOOT_DEADLINE_S)
    name = text(booted.run_check("edgectl config get appliance.name")[-1]).strip().strip('"')
    assert name.startswith("cut-"), name
    kept = int(name.split("-")[1])
    # The change in flight at the cut may or may not have landed; nothing acknowledged is lost.
    assert kept >= last_acked, f"acknowledged cut-{last_acked} but the store has {name}"
    booted.run_check("edgectl config set appliance.name edge-hil >/dev/null")
