#!/usr/bin/env python3
"""Opens N idle TLS connections to a proxy, holds them, and reports when they are all up.

usage: idle_tls.py HOST PORT CAFILE N HOLD_SECONDS
Prints "UP <completed> FAILED <failed>" once every attempt finished (a connection counts as up
only when its TLS handshake completed), then holds the completed ones for HOLD_SECONDS.
"""
import asyncio
import ssl
import sys


async def main():
    host, port, cafile, n, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    sem = asyncio.Semaphore(200)
    conns = []
    failed = 0

    async def one():
        nonlocal failed
        async with sem:
            try:
                # Generous: a proxy with few TLS worker processes handshakes 10,000 slowly.
                _, w = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), 60)
                conns.append(w)
            except Exception:
                failed += 1

    await asyncio.gather(*(one() for _ in range(n)))
    print(f"UP {len(conns)} FAILED {failed}", flush=True)
    await asyncio.sleep(hold)
    for w in conns:
        w.close()


asyncio.run(main())
