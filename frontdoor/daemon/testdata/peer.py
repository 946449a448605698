"""An independent peer: Python's websockets (Debian python3-websockets)
against a running wsgate. Usage: peer.py ws://host:port. Exits non-zero on
the first failed check."""
import asyncio
import sys

import websockets

BASE = sys.argv[1]


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


async def main():
    async with websockets.connect(BASE + "/echo", max_size=None, compression=None) as ws:
        for n in (0, 1, 125, 126, 65535, 65536, 1 << 20):
            text = ("κόσμε" * (n // 10 + 1))[: n // 2]
            await ws.send(text)
            check(await ws.recv() == text, f"echo text of {len(text)} chars")
            data = bytes(i % 256 for i in range(n))
            await ws.send(data)
            check(await ws.recv() == data, f"echo binary of {n} bytes")
        # A fragmented message from an async iterator.
        await ws.send(iter([b"frag", b"ment", b"ed"]))
        check(await ws.recv() == b"fragmented", "fragmented message")
        pong = await ws.ping(b"py")
        await asyncio.wait_for(pong, 5)
        check(True, "ping answered")

    async with websockets.connect(BASE + "/dumb-increment", subprotocols=["dumb-increment-protocol"]) as ws:
        check(ws.subprotocol == "dumb-increment-protocol", "dumb-increment subprotocol")
        got = [await ws.recv() for _ in range(3)]
        check(got == ["0", "1", "2"], f"counter {got}")
        await ws.send("reset\n")
        for _ in range(3):
            if await ws.recv() == "0":
                break
        else:
            check(False, "reset")
        check(True, "reset")

    try:
        async with websockets.connect(BASE + "/dumb-increment"):
            check(False, "refusal without the subprotocol")
    except websockets.InvalidStatusCode as e:
        check(e.status_code == 403, "refused with 403 without the subprotocol")

    async with websockets.connect(BASE + "/chat") as a, websockets.connect(BASE + "/chat") as b:
        await asyncio.sleep(0.1)
        await a.send("alice: hi")
        check(await a.recv() == "alice: hi" and await b.recv() == "alice: hi", "chat broadcast")

    ws = await websockets.connect(BASE + "/control")
    await ws.send("close 4002 python")
    try:
        await ws.recv()
        check(False, "server close")
    except websockets.ConnectionClosed as e:
        check(e.rcvd.code == 4002 and e.rcvd.reason == "python", "server-initiated close with code and reason")

    ws = await websockets.connect(BASE + "/echo")
    await ws.close(1000, "client bye")
    check(ws.close_code == 1000, f"client-initiated close answered ({ws.close_code})")


asyncio.run(main())
