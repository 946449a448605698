import unittest

from wsgate_producer import protocol as p


class ProtocolTest(unittest.TestCase):
    def decode(self, frame):
        n = int.from_bytes(frame[:4], "big")
        self.assertEqual(n, len(frame) - 4)
        return p.decode(frame[4:])

    def test_round_trips(self):
        f = self.decode(p.open_frame(7, "/chat", "a=1", "h", "1.2.3.4:5", True, ["v1", "v2"], [("Origin", "o")]))
        self.assertEqual((f.type, f.conn, f.path, f.query, f.host, f.remote, f.tls, f.protocols, f.headers),
                         (p.OPEN, 7, "/chat", "a=1", "h", "1.2.3.4:5", True, ["v1", "v2"], [("Origin", "o")]))
        f = self.decode(p.send(3, "κόσμε"))
        self.assertEqual((f.type, f.conn, f.kind, f.data()), (p.SEND, 3, p.TEXT, "κόσμε"))
        f = self.decode(p.send(3, b"\x00\xff"))
        self.assertEqual((f.kind, f.data()), (p.BINARY, b"\x00\xff"))
        f = self.decode(p.accept(4, "v2", [("X-A", "b")]))
        self.assertEqual((f.conn, f.subprotocol, f.headers), (4, "v2", [("X-A", "b")]))
        f = self.decode(p.refuse(4, 401, "no"))
        self.assertEqual((f.status, f.reason), (401, "no"))
        f = self.decode(p.room("lobby", b"x", 9))
        self.assertEqual((f.room, f.except_conn, f.data()), ("lobby", 9, b"x"))
        f = self.decode(p.close(5, 4000, "bye"))
        self.assertEqual((f.type, f.code, f.reason), (p.CLOSE, 4000, "bye"))
        f = self.decode(p.broadcast("all"))
        self.assertEqual((f.except_conn, f.data()), (0, "all"))

    def test_identity(self):
        class Link:
            route = "/r"
        f = self.decode(p.open_frame(7, headers=[("Meta-User", "alice"), ("Meta-Auth-Type", "Bearer"),
                                                 ("Meta-Auth-Claims", '{"scope": "chat", "sub": "alice"}')]))
        c = p.ClientInfo(Link(), f)
        self.assertEqual((c.user, c.auth_type, c.claims()["scope"]), ("alice", "Bearer", "chat"))
        anon = p.ClientInfo(Link(), self.decode(p.open_frame(8)))
        self.assertEqual((anon.user, anon.auth_type, anon.claims()), ("", "", {}))

    def test_accept_headers_repeat(self):
        # Every form an application writes keeps each header, in order: two
        # Set-Cookie stay two.
        want = [("Set-Cookie", "a=; Max-Age=0"), ("Set-Cookie", "b=; Max-Age=0"), ("X", "1")]
        for headers in (want, {"Set-Cookie": ["a=; Max-Age=0", "b=; Max-Age=0"], "X": "1"}):
            body = p.accept(7, "", headers)
            f = p.read_frame(self._reader(body))
            self.assertEqual(f.type, p.ACCEPT)
            self.assertEqual(list(f.headers), want)
        self.assertEqual(p.header_pairs(None), [])

    @staticmethod
    def _reader(data):
        view = memoryview(data)
        pos = [0]

        def read(n):
            b = bytes(view[pos[0]:pos[0] + n])
            pos[0] += n
            return b
        return read

    def test_hello_max_frame(self):
        f = self.decode(p.hello(p.MODE_MUX, "/r", "wsgate/1", 66560))
        self.assertEqual((f.route, f.software, f.max_frame), ("/r", "wsgate/1", 66560))
        old = p.hello(p.MODE_MUX, "/r", "wsgate/1")[:-4]  # a gateway without the field
        old = (len(old) - 4).to_bytes(4, "big") + old[4:]
        self.assertEqual(self.decode(old).max_frame, 0)

    def test_check_size(self):
        frame = p.send(1, "x" * 100)  # 1 + 8 + 1 + 100 bytes after the length
        p.check_size(frame, 110)
        p.check_size(frame, 0)  # not announced: not checked
        with self.assertRaises(p.MessageTooBig):
            p.check_size(frame, 109)

    def test_errors(self):
        with self.assertRaises(p.ProtocolError):
            p.decode(b"")
        with self.assertRaises(p.ProtocolError):
            p.decode(p.close(1)[4:10])
        with self.assertRaises(p.ProtocolError):
            p.decode(bytes([p.SEND]) + (1).to_bytes(8, "big") + bytes([9]))
        self.assertEqual(p.decode(bytes([0x7F, 1])).type, 0x7F)  # unknown: ignored by callers


if __name__ == "__main__":
    unittest.main()
