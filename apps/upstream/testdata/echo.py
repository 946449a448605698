#!/usr/bin/python3
"""An upstream WebSocket server written with Python's websockets (Debian's
python3-websockets), as its documentation shows: echoes every message;
"/headers" answers with the handshake's headers as JSON; "/close CODE
REASON" closes with them; "/ext" names the negotiated extensions.

    echo.py [--deflate]      prints "listening on PORT"
"""
import asyncio
import json
import sys

import websockets


async def handler(ws, path=None):
    async for msg in ws:
        if msg == "/headers":
            await ws.send(json.dumps({k.lower(): v for k, v in ws.request_headers.raw_items()}))
        elif isinstance(msg, str) and msg.startswith("/close "):
            code, _, reason = msg[7:].partition(" ")
            await ws.close(int(code), reason)
            return
        elif msg == "/ext":
            await ws.send(",".join(e.name for e in ws.extensions))
        else:
            await ws.send(msg)


async def main():
    kw = {} if "--deflate" in sys.argv else {"compression": None}
    async with websockets.serve(handler, "127.0.0.1", 0, subprotocols=["chat.v1", "chat.v2"], max_size=2**24, **kw) as srv:
        print("listening on", srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


asyncio.run(main())
