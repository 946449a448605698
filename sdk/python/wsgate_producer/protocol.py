"""Encoding and decoding of the producer protocol's frames
(docs/backend-protocol.md)."""
import json
import struct

VERSION = 1

# Gateway to producer.
HELLO = 0x01
OPEN = 0x02
MESSAGE = 0x03
CLOSED = 0x04
COUNTED = 0x05
DRAINED = 0x06
# Producer to gateway.
HELLO_REPLY = 0x81
ACCEPT = 0x82
REFUSE = 0x83
SEND = 0x84
BROADCAST = 0x85
ROOM = 0x86
JOIN = 0x87
LEAVE = 0x88
CLOSE = 0x89
COUNT = 0x8A
DRAIN = 0x8B

TEXT = 1
BINARY = 2

MODE_PER_CLIENT = 0
MODE_MUX = 1


class ProtocolError(Exception):
    """A frame that does not follow the protocol."""


class MessageTooBig(ValueError):
    """A message larger than the gateway takes on this route (its
    max_message_size plus 64 KiB, which the gateway's HELLO announces).
    Nothing was written: the gateway would skip the frame and close the
    client with 1009, or drop a broadcast."""


def check_size(frame, max_frame):
    """Raise MessageTooBig when frame (length prefix included) is over
    max_frame, the gateway's limit from its HELLO (0: not announced)."""
    if max_frame and len(frame) - 4 > max_frame:
        raise MessageTooBig("a frame of %d bytes is over the %d bytes the gateway takes (the route's "
                            "max_message_size plus 64 KiB)" % (len(frame) - 4, max_frame))


def _str(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    b = b[:0xFFFF]
    return struct.pack(">H", len(b)) + b


def _frame(ftype, body):
    return struct.pack(">IB", len(body) + 1, ftype) + body


def _kind_payload(data):
    if isinstance(data, str):
        return TEXT, data.encode("utf-8")
    return BINARY, bytes(data)


def hello_reply(version=VERSION):
    return _frame(HELLO_REPLY, struct.pack(">H", version))


def header_pairs(headers):
    """The (name, value) pairs of headers for the 101, in order: a list of
    pairs (a name may repeat, as Set-Cookie must to set two cookies), or a
    mapping whose value is a string or a list of strings."""
    if not headers:
        return []
    items = headers.items() if hasattr(headers, "items") else headers
    pairs = []
    for name, value in items:
        if isinstance(value, (list, tuple)):
            pairs.extend((name, v) for v in value)
        else:
            pairs.append((name, value))
    return pairs


def accept(conn, subprotocol="", headers=()):
    body = struct.pack(">Q", conn) + _str(subprotocol or "")
    headers = header_pairs(headers)
    body += struct.pack(">H", len(headers))
    for name, value in headers:
        body += _str(name) + _str(value)
    return _frame(ACCEPT, body)


def refuse(conn, status, reason=""):
    return _frame(REFUSE, struct.pack(">QH", conn, status) + _str(reason))


def send(conn, data):
    kind, payload = _kind_payload(data)
    return _frame(SEND, struct.pack(">QB", conn, kind) + payload)


def broadcast(data, except_conn=0):
    kind, payload = _kind_payload(data)
    return _frame(BROADCAST, struct.pack(">QB", except_conn, kind) + payload)


def room(name, data, except_conn=0):
    kind, payload = _kind_payload(data)
    return _frame(ROOM, _str(name) + struct.pack(">QB", except_conn, kind) + payload)


def join(conn, name):
    return _frame(JOIN, struct.pack(">Q", conn) + _str(name))


def leave(conn, name):
    return _frame(LEAVE, struct.pack(">Q", conn) + _str(name))


def close(conn, code=1000, reason=""):
    return _frame(CLOSE, struct.pack(">QH", conn, code) + _str(reason))


def drain():
    """This instance is going away: the gateway moves the connection's
    clients to the instance now listening at the socket path, and answers
    DRAINED after the last frame it sends here."""
    return _frame(DRAIN, b"")


def drained():
    return _frame(DRAINED, b"")


# The gateway's frames, for tests that play the gateway.

def count(req_id, room=""):
    """Ask how many clients are in room ("" for the route) on every gateway
    process sharing the route's bus; the answer is a COUNTED frame."""
    return _frame(COUNT, struct.pack(">I", req_id) + _str(room))


def counted(req_id, room, n, nodes):
    return _frame(COUNTED, struct.pack(">I", req_id) + _str(room) + struct.pack(">QH", n, nodes))


def hello(mode, route, software="test", max_frame=0):
    return _frame(HELLO, struct.pack(">HB", VERSION, mode) + _str(route) + _str(software) +
                  struct.pack(">I", max_frame))


def open_frame(conn, path="/", query="", host="", remote="", tls=False, protocols=(), headers=(),
               resumed=False, rooms=()):
    body = struct.pack(">Q", conn) + _str(path) + _str(query) + _str(host) + _str(remote)
    body += struct.pack(">BB", (1 if tls else 0) | (2 if resumed else 0), len(protocols))
    for p in protocols:
        body += _str(p)
    headers = list(headers)
    body += struct.pack(">H", len(headers))
    for name, value in headers:
        body += _str(name) + _str(value)
    if resumed:
        body += struct.pack(">H", len(rooms)) + b"".join(_str(r) for r in rooms)
    return _frame(OPEN, body)


def message(conn, data):
    kind, payload = _kind_payload(data)
    return _frame(MESSAGE, struct.pack(">QB", conn, kind) + payload)


def closed(conn, code, reason=""):
    return _frame(CLOSED, struct.pack(">QH", conn, code) + _str(reason))


class Frame:
    """A decoded frame; the attributes set depend on its type."""

    __slots__ = ("type", "conn", "version", "mode", "route", "software", "path", "query", "host",
                 "remote", "tls", "protocols", "headers", "kind", "payload", "code", "reason",
                 "subprotocol", "status", "except_conn", "room", "id", "count", "nodes", "resumed", "rooms",
                 "max_frame")

    def __init__(self, ftype):
        self.type = ftype
        for name in self.__slots__[1:]:
            setattr(self, name, None)

    def data(self):
        """The payload as str for text, bytes for binary."""
        if self.kind == TEXT:
            return self.payload.decode("utf-8")
        return self.payload


class _Decoder:
    def __init__(self, b):
        self.b = b
        self.i = 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise ProtocolError("frame too short")
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def str(self):
        return bytes(self.take(self.u16())).decode("utf-8", "replace")

    def rest(self):
        v = self.b[self.i:]
        self.i = len(self.b)
        return bytes(v)

    def headers(self):
        return [(self.str(), self.str()) for _ in range(self.u16())]


def decode(body):
    """Decode one frame body (the type byte first)."""
    if not body:
        raise ProtocolError("empty frame")
    f = Frame(body[0])
    d = _Decoder(memoryview(body)[1:])
    t = f.type
    if t == HELLO:
        f.version, f.mode, f.route, f.software = d.u16(), d.u8(), d.str(), d.str()
        f.max_frame = d.u32() if len(d.b) - d.i >= 4 else 0
    elif t == HELLO_REPLY:
        f.version = d.u16()
    elif t == OPEN:
        f.conn, f.path, f.query, f.host, f.remote = d.u64(), d.str(), d.str(), d.str(), d.str()
        flags = d.u8()
        f.tls, f.resumed = bool(flags & 1), bool(flags & 2)
        f.protocols = [d.str() for _ in range(d.u8())]
        f.headers = d.headers()
        f.rooms = []
        if f.resumed and len(d.b) - d.i >= 2:
            f.rooms = [d.str() for _ in range(d.u16())]
    elif t in (MESSAGE, SEND):
        f.conn, f.kind, f.payload = d.u64(), d.u8(), d.rest()
    elif t in (CLOSED, CLOSE):
        f.conn, f.code, f.reason = d.u64(), d.u16(), d.str()
    elif t == ACCEPT:
        f.conn, f.subprotocol, f.headers = d.u64(), d.str(), d.headers()
    elif t == REFUSE:
        f.conn, f.status, f.reason = d.u64(), d.u16(), d.str()
    elif t == BROADCAST:
        f.except_conn, f.kind, f.payload = d.u64(), d.u8(), d.rest()
    elif t == ROOM:
        f.room, f.except_conn, f.kind, f.payload = d.str(), d.u64(), d.u8(), d.rest()
    elif t in (JOIN, LEAVE):
        f.conn, f.room = d.u64(), d.str()
    elif t == COUNT:
        f.id, f.room = d.u32(), d.str()
    elif t == COUNTED:
        f.id, f.room, f.count, f.nodes = d.u32(), d.str(), d.u64(), d.u16()
    if f.kind is not None and f.kind not in (TEXT, BINARY):
        raise ProtocolError("message kind %d" % f.kind)
    return f


def read_frame(read_exactly, max_size=64 << 20):
    """Read one frame with read_exactly(n), which returns n bytes or raises
    EOFError."""
    (n,) = struct.unpack(">I", read_exactly(4))
    if n < 1:
        raise ProtocolError("empty frame")
    if n > max_size:
        raise ProtocolError("frame of %d bytes over the limit" % n)
    return decode(read_exactly(n))


class ClientInfo:
    """What the gateway said about a client in its OPEN frame; the blocking
    and asyncio clients both start from it."""

    def claims(self):
        """The claims of the client's identity (a token's, or the headers
        a forward-auth service answered with), {} for none."""
        try:
            return json.loads(self.headers.get("Meta-Auth-Claims", "{}"))
        except ValueError:
            return {}

    def __init__(self, link, f):
        self._link = link
        self.id = f.conn
        self.path = f.path
        self.query = f.query
        self.host = f.host
        self.remote = f.remote
        self.tls = f.tls
        self.protocols = list(f.protocols)
        self.headers = dict(f.headers)
        # Who the client proved to be at the gateway (its route's auth: a
        # token's subject, a forward-auth service's user, a certificate's
        # name) and how ("Bearer", "Forward", "Cert", httpd's "Basic"):
        # OPEN's Meta-User and Meta-Auth-Type, which the gateway never
        # takes from a client. "" for an anonymous one.
        self.user = self.headers.get("Meta-User", "")
        self.auth_type = self.headers.get("Meta-Auth-Type", "")
        self.route = link.route
        # A client the gateway held while a producer restarted, or moved
        # from an instance that drained: its WebSocket stayed open, and
        # rooms are the rooms it is in.
        self.resumed = bool(f.resumed)
        self.rooms = list(f.rooms or ())
        self.closed = False
        self.state = None
