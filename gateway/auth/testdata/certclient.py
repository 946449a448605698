#!/usr/bin/python3
"""A wss client with a client certificate, Python's ssl and websockets:
prints "101 <first message>", the refusal's status, or "failed <error>".

    certclient.py URI CA [CERT KEY]
"""
import asyncio
import ssl
import sys

import websockets


async def main(uri, ca, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    try:
        async with websockets.connect(uri, ssl=ctx, open_timeout=10) as ws:
            print("101", await asyncio.wait_for(ws.recv(), 10))
    except websockets.exceptions.InvalidStatusCode as e:
        print(e.status_code)
    except Exception as e:  # a TLS alert surfaces as one of several errors
        status = getattr(getattr(e, "response", None), "status_code", None)
        print(status if status else "failed " + type(e).__name__)


asyncio.run(main(*sys.argv[1:]))
