"""First boot of a fresh image: unattended provisioning, then all roles ready in time."""

from conftest import BOOT_DEADLINE_S, BOOT_TARGET_S


def test_boots_to_all_roles_ready_within_deadline(booted):
    wall, uptime, slot = booted.first_boot
    print(f"\nfirst boot: all roles ready {wall:.1f}s after power-on (kernel uptime {uptime:.1f}s), "
          f"slot {slot}; target {BOOT_TARGET_S:.0f}s, test deadline {BOOT_DEADLINE_S:.0f}s")
    assert slot == "A"
    assert wall <= BOOT_DEADLINE_S


def test_provisioning_applied_once_and_store_is_source_of_truth(booted):
    out = booted.run_check("ls /data")
    assert "provisioning.applied" in " ".join(out)
    assert "provisioning.toml" not in " ".join(out)
    name = booted.run_check("edgectl config get appliance.name")
    assert name[-1].strip().strip('"') == "edge-hil"
    ext = booted.run_check("edgectl config get network.external.address")
    assert "198.51.100.10" in ext[-1]
    hops = booted.run_check("edgectl config get access_edge.next_hops")
    assert "10.20.0.20:5061" in " ".join(hops)
    # The admin password hash was provisioned; the password itself never is.
    assert booted.run_check("cat /data/admin.hash")[-1].startswith("$6$")


def test_ports_configured_from_provisioning(booted, rig):
    out = booted.run_check("ip -o addr show")
    joined = " ".join(out)
    assert "198.51.100.10/24" in joined and "10.20.0.10/24" in joined
    ping = booted.run_check(f"ping -c 2 -W 2 {rig.inet.ip} >/dev/null && ping -c 2 -W 2 {rig.lan.ip} >/dev/null && echo reachable")
    assert ping[-1] == "reachable"


def test_all_roles_report_health(booted):
    import json

    out = booted.run_check("edgectl --json status")
    status = json.loads("\n".join(out))
    roles = {r["role"]: r["health"]["state"] for r in status["roles"]}
    print(f"\nroles: {roles}")
    assert roles, "edged reports no roles"
    assert all(state in ("ready", "degraded", "disabled") for state in roles.values()), roles
