"""SIP through the Access Edge: a remote user's client on the internet side places calls
through the appliance to a Director on the internal side (SIPp as both ends, with stunnel
adding TLS because Debian's SIPp has none).

The rig plays the organisation's PKI: it creates its own CA and Director certificate,
installs the CA on the appliance as the internal trust anchor through edgectl (what an
admin does), and the edge then opens mutual TLS to the Director on 5061."""

import base64
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from rig.netns import sh

# The remote-user port of the loopback default that the appliance's provisioning keeps.
REMOTE_USERS_PORT = 10443
DIRECTOR_TLS_PORT = 5061
DIRECTOR_SIP_PORT = 5070
USER_LOCAL_PORT = 5090
CALLS = 5


def require_tools() -> None:
    missing = [t for t in ("sipp", "stunnel4", "openssl") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"rig host lacks {missing} (Debian: sip-tester stunnel4 openssl)")


def require_access_edge(appliance) -> None:
    out = appliance.run_check("edgectl --json status")
    health = {r["role"]: r["health"]["state"] for r in json.loads("\n".join(out))["roles"]}
    assert health.get("access_edge") in ("ready", "degraded"), health


def make_pki(work: Path, director_ip: str) -> None:
    """A rig CA and a Director certificate whose SAN is the Director's address."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=work, timeout=60)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=edge HIL rig CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "director.key", "-out", "director.csr", "-subj", "/CN=director.hil")
    (work / "director.ext").write_text(
        f"subjectAltName=IP:{director_ip},DNS:director.hil\n"
        "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "director.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "director.pem", "-days", "2", "-extfile", "director.ext")


def stunnel(work: Path, name: str, netns: str, body: str) -> subprocess.Popen:
    conf = work / f"{name}.conf"
    conf.write_text(f"foreground = yes\npid =\ndebug = 4\noutput = {work / (name + '.log')}\n{body}")
    return subprocess.Popen(["ip", "netns", "exec", netns, "stunnel4", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_listening(netns: str, port: int, deadline_s: float = 10) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        r = sh("ss", "-Htln", f"sport = :{port}", netns=netns, check=False)
        if r.stdout.strip():
            return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} in {netns}")


def test_sip_calls_from_internet_to_director(booted, rig):
    require_tools()
    require_access_edge(booted)
    work = Path(tempfile.mkdtemp(prefix="edgehil-sip-"))
    procs: list[subprocess.Popen] = []
    try:
        make_pki(work, rig.lan.ip)
        # Install the rig CA as the internal trust anchor, as an admin would.
        ca_b64 = base64.b64encode((work / "ca.pem").read_bytes()).decode()
        # Synced before the configuration names it: a later power cut must not leave the
        # store pointing at an empty file (edged refuses a configuration whose CA is missing).
        booted.run_check(f"echo {ca_b64} | base64 -d > /data/rig-ca.pem && chmod 644 /data/rig-ca.pem && sync")
        booted.run_check("edgectl config set tls.internal_ca_files '[\"/data/rig-ca.pem\"]'")

        # The Director: SIPp's UAS behind stunnel, on the internal side. No call limit: the
        # edge's OPTIONS health checks reach it too, and it is stopped at the end.
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", rig.lan.netns, "sipp", "-sn", "uas", "-t", "t1", "-i", rig.lan.ip,
             "-p", str(DIRECTOR_SIP_PORT), "-timeout", "120s", "-nostdin",
             "-trace_err", "-error_file", str(work / "uas_err.log")],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(stunnel(work, "director", rig.lan.netns,
                             f"[director]\naccept = {rig.lan.ip}:{DIRECTOR_TLS_PORT}\n"
                             f"connect = {rig.lan.ip}:{DIRECTOR_SIP_PORT}\n"
                             f"cert = {work / 'director.pem'}\nkey = {work / 'director.key'}\n"))
        # The remote user: SIPp's UAC behind a TLS client, on the internet side.
        procs.append(stunnel(work, "user", rig.inet.netns,
                             f"[user]\nclient = yes\naccept = 127.0.0.1:{USER_LOCAL_PORT}\n"
                             f"connect = {rig.inet.appliance}:{REMOTE_USERS_PORT}\nverifyChain = no\n"))
        wait_listening(rig.lan.netns, DIRECTOR_TLS_PORT)
        wait_listening(rig.lan.netns, DIRECTOR_SIP_PORT)
        wait_listening(rig.inet.netns, USER_LOCAL_PORT)

        t0 = time.monotonic()
        r = sh("sipp", "-sn", "uac", f"127.0.0.1:{USER_LOCAL_PORT}", "-t", "t1", "-i", "127.0.0.1",
               "-m", str(CALLS), "-r", "2", "-timeout", "90s", "-nostdin",
               "-trace_err", "-error_file", str(work / "uac_err.log"),
               netns=rig.inet.netns, check=False, timeout=120)
        elapsed = time.monotonic() - t0
        uac_errors = (work / "uac_err.log").read_text() if (work / "uac_err.log").exists() else ""
        uas_errors = (work / "uas_err.log").read_text() if (work / "uas_err.log").exists() else ""
        edge_log = booted.run("tail -n 20 /run/log/edged.log")[0]
        print(f"\nSIP through the appliance: {CALLS} calls (INVITE/ACK/BYE) in {elapsed:.1f}s, sipp exit {r.returncode}")
        assert r.returncode == 0, (
            f"sipp client failed ({r.returncode}):\n{uac_errors[-1500:]}\nDirector side:\n{uas_errors[-1500:]}\n"
            f"user stunnel:\n{(work / 'user.log').read_text()[-800:] if (work / 'user.log').exists() else ''}\n"
            f"director stunnel:\n{(work / 'director.log').read_text()[-800:] if (work / 'director.log').exists() else ''}\n"
            f"edged:\n" + "\n".join(edge_log))

        # The edge counted what it forwarded; the Director saw mutual TLS from the appliance.
        status = json.loads("\n".join(booted.run_check("edgectl --json status")))
        access = next(r for r in status["roles"] if r["role"] == "access_edge")
        print(f"access edge counters: {access.get('counters')}")
        assert access["counters"].get("requests", 0) >= CALLS * 3, access
    finally:
        # Later tests start from the provisioned trust anchors again.
        booted.run("edgectl config set tls.internal_ca_files '[]'")
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
