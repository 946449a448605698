import os
import queue
import tempfile
import threading
import unittest

from wsgate_producer import ACCEPT, CLOSE, IO, Server
from wsgate_producer import protocol as p

from .gateway import FakeGateway


class BlockingTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "p.sock")
        self.server = Server(self.path, max_clients=2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def tearDown(self):
        self.stop.set()
        self.server.close()
        self.dir.cleanup()

    def loop(self):
        while not self.stop.is_set():
            try:
                ev = self.server.dequeue(timeout=0.05)
            except queue.Empty:
                continue
            if ev.type == ACCEPT:
                if ev.client.query == "refuse":
                    ev.refuse(401, "no")
                elif "v2" in ev.client.protocols:
                    ev.accept("v2", {"X-Py": "1"})
            elif ev.type == IO:
                data = ev.read()
                if data == "join":
                    ev.client.join("r")
                    ev.respond("joined")
                elif data == "bye":
                    ev.client.close(4000, "py")
                elif data == "count":
                    client = ev.client
                    threading.Thread(target=lambda: client.send("%d on %d" % client.count("lobby")), daemon=True).start()
                else:
                    ev.respond(data)

    def test_count(self):
        g = FakeGateway(self.path)
        g.send(p.open_frame(1))
        self.assertEqual(g.read().type, p.ACCEPT)
        g.send(p.message(1, "count"))
        f = g.read()
        self.assertEqual((f.type, f.room), (p.COUNT, "lobby"))
        g.send(p.counted(f.id, "lobby", 7, 3))
        self.assertEqual(g.read().data(), "7 on 3")
        g.close()

    def test_modes(self):
        for mode in (p.MODE_MUX, p.MODE_PER_CLIENT):
            with self.subTest(mode=mode):
                g = FakeGateway(self.path, mode)
                g.send(p.open_frame(1, protocols=["v1", "v2"]))
                f = g.read()
                self.assertEqual((f.type, f.conn, f.subprotocol, f.headers), (p.ACCEPT, 1, "v2", [("X-Py", "1")]))
                g.send(p.message(1, b"\x00bin"))
                f = g.read()
                self.assertEqual((f.type, f.conn, f.data()), (p.SEND, 1, b"\x00bin"))
                g.send(p.message(1, "join"))
                self.assertEqual(g.read().type, p.JOIN)
                self.assertEqual(g.read().data(), "joined")
                g.send(p.message(1, "bye"))
                f = g.read()
                self.assertEqual((f.type, f.code, f.reason), (p.CLOSE, 4000, "py"))
                g.send(p.closed(1, 4000))
                g.send(p.open_frame(2, query="refuse"))
                f = g.read()
                self.assertEqual((f.type, f.conn, f.status), (p.REFUSE, 2, 401))
                g.close()

    def test_max_clients(self):
        g = FakeGateway(self.path)
        for conn in (1, 2, 3):
            g.send(p.open_frame(conn))
        answers = {g.read().type for _ in range(3)}
        self.assertEqual(answers, {p.ACCEPT, p.REFUSE})
        g.close()


class HandoverTest(unittest.TestCase):
    """A planned handover: a new instance takes the socket over, the old one
    drains; what the gateway sent before DRAINED is still served by the old
    one, and the new one learns resumed clients and their rooms."""

    def serve(self, server, events):
        def loop():
            while True:
                try:
                    ev = server.dequeue(timeout=0.05)
                except queue.Empty:
                    if getattr(server, "stopped", False):
                        return
                    continue
                events.append(ev)
                if ev.type == IO:
                    ev.respond(ev.read())
        threading.Thread(target=loop, daemon=True).start()

    def test_drain_and_resume(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "p.sock")
            old, old_events = Server(path), []
            self.serve(old, old_events)
            g = FakeGateway(path)
            g.send(p.open_frame(1))
            self.assertEqual(g.read().type, p.ACCEPT)
            g.send(p.message(1, "a"))
            self.assertEqual(g.read().data(), "a")
            with self.assertRaises(OSError):
                Server(path)  # in use, without take_over
            new, new_events = Server(path, take_over=True), []
            self.serve(new, new_events)
            self.assertTrue(old.replaced())
            self.assertFalse(new.replaced())
            result = []
            t = threading.Thread(target=lambda: result.append(old.drain(timeout=10)))
            t.start()
            self.assertEqual(g.read().type, p.DRAIN)
            g.send(p.message(1, "b"))  # sent before the gateway's DRAINED: still served here
            g.send(p.drained())
            self.assertEqual(g.read().data(), "b")
            with self.assertRaises(EOFError):
                g.read()
            t.join(10)
            self.assertEqual(result, [True])
            closes = [(e.code, e.reason) for e in old_events if e.type == CLOSE]
            self.assertEqual(closes, [(1012, "moved")])
            # The gateway re-announces the client to the new instance.
            g2 = FakeGateway(path)
            g2.send(p.open_frame(1, resumed=True, rooms=["r", "name:x"]))
            self.assertEqual(g2.read().type, p.ACCEPT)
            opened = [e.client for e in new_events if e.type == ACCEPT]
            self.assertEqual([(c.resumed, c.rooms) for c in opened], [(True, ["r", "name:x"])])
            g2.send(p.message(1, "c"))
            self.assertEqual(g2.read().data(), "c")
            g2.close()
            old.stopped = new.stopped = True
            new.close()


if __name__ == "__main__":
    unittest.main()


class ListenTest(unittest.TestCase):
    def test_published_listening(self):
        import socket
        import stat
        from wsgate_producer.blocking import listen_unix

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "p.sock")
            s = listen_unix(path, 0o640)
            try:
                st = os.lstat(path)
                self.assertTrue(stat.S_ISSOCK(st.st_mode))
                self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
                self.assertEqual(os.listdir(d), ["p.sock"])
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.connect(path)
                c.close()
                with self.assertRaises(OSError):
                    listen_unix(path)  # in use
            finally:
                s.close()

