#!/usr/bin/env python3
"""libwebsockets' dumb-increment-protocol as a wsgate producer, on the
SDK's asyncio API: clients must offer the dumb-increment-protocol
subprotocol (others are refused with 403), get a counter every 50 ms, and
reset it by sending "reset\\n".

    increment.py -R /run/wsgate -n increment [-u nobody] [-m 50]
"""
import asyncio
import os

import sample_options

from wsgate_producer.aio import Accept, Handler, Refused, start

PROTOCOL = "dumb-increment-protocol"


class Increment(Handler):
    def __init__(self, interval=0.05):
        self.interval = interval

    async def on_open(self, client):
        if PROTOCOL not in client.protocols:
            raise Refused(403, "dumb-increment-protocol was not offered")
        client.state = {"n": 0, "task": asyncio.ensure_future(self.count(client))}
        return Accept(PROTOCOL)

    async def count(self, client):
        while not client.closed:
            await asyncio.sleep(self.interval)
            st = client.state
            try:
                await client.send(str(st["n"]))
            except ConnectionError:
                return
            st["n"] += 1

    async def on_message(self, client, data):
        if data == "reset\n":
            client.state["n"] = 0

    async def on_close(self, client, code, reason):
        if client.state:
            client.state["task"].cancel()


async def main():
    opts = sample_options.parse(__doc__, "increment")
    srv = await start(opts.socket, Increment(), max_clients=opts.max_clients)
    sample_options.drop_privileges(opts.user)
    print("listening on", opts.socket, flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
