#!/usr/bin/env python3
"""Opens N idle TLS connections to a proxy, holds them, and reports when they are all up.

usage: idle_tls.py HOST PORT CAFILE N HOLD_SECONDS
Prints "UP <n>" once n handshakes completed, then holds them for HOLD_SECONDS.
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

    async def one():
        async with sem:
            try:
                _, w = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), 20)
                conns.append(w)
            except Exception:
                pass

    await asyncio.gather(*(one() for _ in range(n)))
    print(f"UP {len(conns)}", flush=True)
    await asyncio.sleep(hold)
    for w in conns:
        w.close()


asyncio.run(main())
