import asyncio
import os
import tempfile
import unittest

from wsgate_producer import protocol as p
from wsgate_producer.aio import Accept, Handler, Refused, drain, start

from .gateway import FakeGateway


class Echo(Handler):
    def __init__(self):
        self.closes = []

    async def on_open(self, client):
        if client.query == "refuse":
            raise Refused(429, "later")
        return Accept("v1" if "v1" in client.protocols else "")

    async def on_message(self, client, data):
        if data == "broadcast":
            await client.broadcast("to all")
        else:
            await client.send(data)

    async def on_close(self, client, code, reason):
        self.closes.append(code)


class AioTest(unittest.IsolatedAsyncioTestCase):
    async def test_modes(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "a.sock")
            h = Echo()
            srv = await start(path, h)
            try:
                for mode in (p.MODE_MUX, p.MODE_PER_CLIENT):
                    g = await asyncio.to_thread(FakeGateway, path, mode)
                    await asyncio.to_thread(g.send, p.open_frame(5, protocols=["v1"]))
                    f = await asyncio.to_thread(g.read)
                    self.assertEqual((f.type, f.subprotocol), (p.ACCEPT, "v1"))
                    await asyncio.to_thread(g.send, p.message(5, "κόσμε"))
                    f = await asyncio.to_thread(g.read)
                    self.assertEqual(f.data(), "κόσμε")
                    await asyncio.to_thread(g.send, p.message(5, "broadcast"))
                    f = await asyncio.to_thread(g.read)
                    self.assertEqual((f.type, f.data()), (p.BROADCAST, "to all"))
                    await asyncio.to_thread(g.send, p.open_frame(6, query="refuse"))
                    f = await asyncio.to_thread(g.read)
                    self.assertEqual((f.type, f.status), (p.REFUSE, 429))
                    await asyncio.to_thread(g.send, p.closed(5, 1001))
                    await asyncio.sleep(0.05)
                    g.close()
                self.assertEqual(h.closes, [1001, 1001])
            finally:
                srv.close()
                await srv.wait_closed()

    async def test_drain(self):
        """A handover: the new instance takes the socket over, the old one
        drains, serves what came before DRAINED, and its moved client is
        closed here with 1012 "moved"; the new one learns a resumed client."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "a.sock")
            old_h, new_h = Echo(), Echo()
            old = await start(path, old_h)
            g = await asyncio.to_thread(FakeGateway, path)
            await asyncio.to_thread(g.send, p.open_frame(5))
            self.assertEqual((await asyncio.to_thread(g.read)).type, p.ACCEPT)
            new = await start(path, new_h, take_over=True)
            try:
                draining = asyncio.ensure_future(drain(old, timeout=10))
                self.assertEqual((await asyncio.to_thread(g.read)).type, p.DRAIN)
                await asyncio.to_thread(g.send, p.message(5, "last"))
                await asyncio.to_thread(g.send, p.drained())
                self.assertEqual((await asyncio.to_thread(g.read)).data(), "last")
                with self.assertRaises(EOFError):
                    await asyncio.to_thread(g.read)
                g.close()
                self.assertTrue(await draining)
                self.assertEqual(old_h.closes, [1012])
                g2 = await asyncio.to_thread(FakeGateway, path)
                await asyncio.to_thread(g2.send, p.open_frame(5, resumed=True, rooms=["r"]))
                self.assertEqual((await asyncio.to_thread(g2.read)).type, p.ACCEPT)
                await asyncio.to_thread(g2.send, p.message(5, "next"))
                self.assertEqual((await asyncio.to_thread(g2.read)).data(), "next")
                g2.close()
            finally:
                new.close()
                await new.wait_closed()


if __name__ == "__main__":
    unittest.main()
