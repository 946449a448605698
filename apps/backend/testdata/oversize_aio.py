"""oversize_blocking.py on the asyncio API."""
import asyncio
import sys

from wsgate_producer import MessageTooBig
from wsgate_producer.aio import Handler, serve


class Sizes(Handler):
    async def on_message(self, client, data):
        what, n = data.split()
        try:
            if what == "send":
                await client.send("x" * int(n))
            else:
                await client.broadcast("x" * int(n))
        except MessageTooBig:
            await client.send("refused")


asyncio.run(serve(sys.argv[1], Sizes()))
