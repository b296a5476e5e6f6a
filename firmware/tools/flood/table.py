"""Prints bench-flood's rows (run.sh writes them, one per flood and server) as a table,
servers side by side under each flood, with the legitimate load's targets marked."""

import sys

rows_path, hz, secs, smoke = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
calls_target, sessions_target, loss_target = map(float, sys.argv[5:8])

SHOW = {
    "idle-tcp": ["connected", "closed_by_server", "held_to_end", "median_close_s"],
    "tls": ["attempts", "server_hellos", "handshakes", "failed"],
    "stun": ["sent", "answers", "bytes_out_per_in"],
    "quic-initials": ["sent", "answers", "bytes_out_per_in"],
    "sip-invite": ["sent", "answered_2xx", "answered_4xx", "answered_5xx", "connect_failures", "closed_by_server"],
    "slowloris": ["handshake_failed", "closed_by_server", "held_to_end", "median_close_s"],
    "turn-user": ["tcp_allocations", "peer_connections", "udp_allocations", "permissions", "channels"],
}


def pairs(text):
    out = {}
    for part in text.split("|"):
        for kv in part.split():
            if "=" not in kv:
                continue
            k, v = kv.split("=", 1)
            try:
                # Several processes of one flood: counts add up.
                if k in out and "." not in v and "." not in out[k]:
                    v = str(int(out[k]) + int(v))
            except ValueError:
                pass
            out[k] = v
    return out


def pct(line, num, den):
    p = pairs(line)
    try:
        n, d = int(p[num]), int(p[den])
    except (KeyError, ValueError):
        return None
    return 100.0 * n / d if d else None


rows = []
for line in open(rows_path):
    f = line.rstrip("\n").split("\t")
    server, name, calls, media, sessions = f[:5]
    peak_rss, after_rss, peak_fds, after_fds, ticks, log_b = map(int, f[5:11])
    alive, _, flood = f[11].partition("|")
    rows.append(dict(server=server, name=name, calls=calls, media=media, sessions=sessions,
                     peak_rss=peak_rss, after_rss=after_rss, peak_fds=peak_fds, after_fds=after_fds,
                     cpu=ticks / hz, log=log_b, alive=alive == "yes", flood=flood))

order = []
for r in rows:
    if r["name"] not in order:
        order.append(r["name"])
server_rank = {"edged": 0, "coturn": 1, "kamailio": 2}


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def outcome(r):
    if r["flood"] in ("-", ""):
        return "(no flood)"
    kind = r["name"].split(":")[0]
    p = pairs(r["flood"])
    keys = SHOW.get(kind, [])
    shown = [f"{k}={p[k]}" for k in keys if k in p]
    shown += [f"{k}={v}" for k, v in p.items() if k.endswith("_stop") and v != "cap"]
    shown += [f"{k}={v}" for k, v in p.items() if k.endswith("refusal_code")]
    return " ".join(shown) or r["flood"]


print(f"bench-flood{' (smoke)' if smoke else ''}: each flood {secs} s; legitimate load at the same time. "
      f"Targets: calls and sessions >= {calls_target} % completed, media loss < {loss_target} %.")
print()
head = ("| flood | server | calls % | sessions % | media loss % | RSS MiB peak / after | fds peak / after "
        "| CPU s | log KiB | legit | flood outcome |")
print(head)
print("|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|")
for name in order:
    for r in sorted((r for r in rows if r["name"] == name), key=lambda r: server_rank.get(r["server"], 9)):
        c = pct(r["calls"], "completed", "offered")
        s = pct(r["sessions"], "completed", "sessions")
        loss = pairs(r["media"]).get("loss_pct")
        loss = float(loss) if loss not in (None, "") else None
        ok = r["alive"]
        ok &= r["calls"] == "-" or (c is not None and c >= calls_target)
        ok &= r["sessions"] == "-" or (s is not None and s >= sessions_target)
        ok &= r["media"] == "-" or (loss is not None and loss < loss_target)
        verdict = ("pass" if ok else "FAIL") + ("" if r["alive"] else " (server exited)")
        print(f"| {name} | {r['server']} | {fmt(c)} | {fmt(s)} | {fmt(loss)} "
              f"| {r['peak_rss'] / 1024:.0f} / {r['after_rss'] / 1024:.0f} | {r['peak_fds']} / {r['after_fds']} "
              f"| {r['cpu']:.1f} | {r['log'] / 1024:.0f} | {verdict} | {outcome(r)} |")
print()
print("RSS is summed over the server's processes (Kamailio: its main process and workers, each "
      "counting the shared pool it touched). CPU is user+system of those processes during the flood. "
      "Log KiB: bytes the server wrote to its log during the flood. legit: the legitimate load against "
      "the targets (and the server still running after the flood).")
