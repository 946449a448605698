"""permessage-deflate against a running wsgate with Python's websockets,
whose zlib decoder enforces the negotiated window: a back-reference past
server_max_window_bits fails the test. Usage: deflate_peer.py ws://host:port"""
import asyncio
import json
import random
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

BASE = sys.argv[1]


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


def message(rng, i):
    items = [{"seq": i, "user": f"user{rng.randrange(40)}", "x": rng.randrange(800), "y": rng.randrange(600)}
             for _ in range(rng.choice([1, 3, 30, 300]))]
    return json.dumps(items)


async def exchange(path, factory_args, label, count=1000):
    factory = ClientPerMessageDeflateFactory(**factory_args)
    async with websockets.connect(BASE + path, extensions=[factory], compression=None, max_size=None) as ws:
        check(len(ws.extensions) == 1, f"{label}: permessage-deflate negotiated ({ws.response_headers.get('Sec-WebSocket-Extensions')})")
        rng = random.Random(42)
        for i in range(count):
            m = message(rng, i)
            await ws.send(m)
            got = await ws.recv()
            if got != m:
                check(False, f"{label}: message {i} echoed intact")
        check(True, f"{label}: {count} messages echoed intact")
        # A fragmented compressed message.
        parts = ["frag-", "mented-" * 50, "message"]
        await ws.send(iter(parts))
        check(await ws.recv() == "".join(parts), f"{label}: fragmented compressed message")


async def main():
    await exchange("/deflate", {}, "context takeover both ways")
    await exchange("/deflate", {"client_max_window_bits": True}, "client_max_window_bits offered")
    await exchange("/deflate", {"server_max_window_bits": 9}, "server window 9 bits")
    await exchange("/deflate", {"server_max_window_bits": 10, "client_max_window_bits": 11}, "server 10, client 11 bits")
    await exchange("/deflate", {"server_no_context_takeover": True, "client_no_context_takeover": True}, "no context takeover")
    await exchange("/deflate-default", {}, "route defaults")
    await exchange("/deflate-small", {"client_max_window_bits": True}, "small windows", count=300)
    # The route caps the server window at 9 bits whatever the client offers.
    async with websockets.connect(BASE + "/deflate-small", compression="deflate") as ws:
        params = ws.response_headers.get("Sec-WebSocket-Extensions")
        check("client_max_window_bits=9" in params, f"client window capped: {params}")
        big = "z" * 30000 + "".join(chr(97 + i % 26) for i in range(20000))
        await ws.send(big)
        check(await ws.recv() == big, "50 KB message through 9-bit windows")


asyncio.run(main())
