"""The asyncio API: subclass Handler and serve it."""
import asyncio

from . import protocol as p
from .blocking import listen_unix


class Refused(Exception):
    """Raise from on_open to refuse a client with an HTTP status."""

    def __init__(self, status=403, reason=""):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Accept:
    """What on_open may return to accept with a subprotocol or headers:
    a list of (name, value) pairs, where a name may repeat (two Set-Cookie
    headers), or a dict whose values are strings or lists of strings."""

    def __init__(self, subprotocol="", headers=None):
        self.subprotocol = subprotocol
        self.headers = headers if headers is not None else {}


class Client(p.ClientInfo):
    """One WebSocket client; its methods are coroutines."""

    async def send(self, data):
        if self.closed:
            raise ConnectionError("client closed")
        await self._link.write(p.send(self.id, data))

    async def close(self, code=1000, reason=""):
        await self._link.write(p.close(self.id, code, reason))

    async def join(self, room):
        await self._link.write(p.join(self.id, room))

    async def leave(self, room):
        await self._link.write(p.leave(self.id, room))

    async def broadcast(self, data, except_self=False):
        await self._link.write(p.broadcast(data, self.id if except_self else 0))

    async def send_room(self, room, data, except_self=False):
        await self._link.write(p.room(room, data, self.id if except_self else 0))

    async def count(self, room=""):
        """How many clients are in room ("" for the route) on every gateway
        process sharing the route's bus, and how many processes counted:
        (count, nodes). Wrap it in asyncio.wait_for to bound the wait."""
        return await self._link.count(room)


class Handler:
    """Override what you need. Calls for the clients of one gateway
    connection run in order; on_open runs as its own task."""

    async def on_open(self, client):
        """Return None or an Accept to accept; raise Refused to refuse."""
        return None

    async def on_message(self, client, data):
        pass

    async def on_close(self, client, code, reason):
        pass


class _Link:
    def __init__(self, server, reader, writer):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.route = None
        self.clients = {}
        self.lock = asyncio.Lock()
        self.counts = {}
        self.next_id = 0
        self.drained = False
        self.opens = set()
        self.max_frame = 0

    async def write(self, frame):
        p.check_size(frame, self.max_frame)
        async with self.lock:
            self.writer.write(frame)
            await self.writer.drain()

    async def count(self, room):
        self.next_id += 1
        req = self.next_id
        fut = asyncio.get_running_loop().create_future()
        self.counts[req] = fut
        try:
            await self.write(p.count(req, room))
            f = await fut
        finally:
            self.counts.pop(req, None)
        return f.count, f.nodes

    async def read_frame(self, max_size):
        try:
            head = await self.reader.readexactly(4)
            n = int.from_bytes(head, "big")
            if n < 1 or n > max_size:
                raise p.ProtocolError("bad frame length %d" % n)
            return p.decode(await self.reader.readexactly(n))
        except asyncio.IncompleteReadError:
            raise EOFError

    async def open(self, c):
        h = self.server.handler
        try:
            if self.server.max_clients and self.server.count > self.server.max_clients:
                raise Refused(503, "too many clients")
            acc = await h.on_open(c) or Accept()
        except Refused as e:
            self.clients.pop(c.id, None)
            self.server.count -= 1
            c.closed = True
            await self.write(p.refuse(c.id, e.status, e.reason))
            return
        except Exception as e:  # a bug in on_open refuses the client
            self.clients.pop(c.id, None)
            self.server.count -= 1
            c.closed = True
            await self.write(p.refuse(c.id, 500, repr(e)))
            return
        await self.write(p.accept(c.id, acc.subprotocol, acc.headers))

    async def run(self):
        h = self.server.handler
        tasks = set()
        try:
            hello = await self.read_frame(1 << 16)
            if hello.type != p.HELLO:
                return
            self.route = hello.route
            self.max_frame = hello.max_frame
            await self.write(p.hello_reply())
            while True:
                f = await self.read_frame(self.server.max_frame)
                if f.type == p.OPEN:
                    c = Client(self, f)
                    self.clients[c.id] = c
                    self.server.count += 1
                    t = asyncio.ensure_future(self.open(c))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                elif f.type == p.DRAINED:
                    # Nothing more comes here: answer the OPENs in flight,
                    # then close; the clients left have moved.
                    self.drained = True
                    if tasks:
                        await asyncio.wait(set(tasks), timeout=5)
                    return
                elif f.type == p.MESSAGE:
                    c = self.clients.get(f.conn)
                    if c is not None:
                        await h.on_message(c, f.data())
                elif f.type == p.CLOSED:
                    c = self.clients.pop(f.conn, None)
                    if c is not None:
                        c.closed = True
                        self.server.count -= 1
                        await h.on_close(c, f.code, f.reason)
                elif f.type == p.COUNTED:
                    fut = self.counts.get(f.id)
                    if fut is not None and not fut.done():
                        fut.set_result(f)
        except (EOFError, OSError, p.ProtocolError):
            pass
        finally:
            self.server.links.discard(self)
            self.writer.close()
            code, reason = (1012, "moved") if self.drained else (1006, "gateway connection lost")
            for c in list(self.clients.values()):
                c.closed = True
                self.server.count -= 1
                await h.on_close(c, code, reason)
            self.clients.clear()


class _Server:
    def __init__(self, handler, max_clients, max_frame):
        self.handler = handler
        self.max_clients = max_clients
        self.max_frame = max_frame
        self.count = 0
        self.links = set()

    async def connected(self, reader, writer):
        link = _Link(self, reader, writer)
        self.links.add(link)
        await link.run()


async def start(address, handler, max_clients=0, mode=0o777, max_frame=64 << 20, take_over=False):
    """Start serving; returns the asyncio server. With take_over, a socket
    in use at address is replaced: this is the new instance of a planned
    handover, and the old one calls drain()."""
    s = _Server(handler, max_clients, max_frame)
    if isinstance(address, tuple):
        srv = await asyncio.start_server(s.connected, address[0], address[1])
    else:
        srv = await asyncio.start_unix_server(s.connected, sock=listen_unix(address, mode, take_over=take_over))
    srv.wsgate = s
    return srv


async def drain(srv, timeout=30.0):
    """Hand the clients of a server from start() to the next instance (see
    Server.drain in the blocking API): stop accepting, send DRAIN on every
    gateway connection and wait for them to close; on_close follows for
    each moved client with 1012 and "moved". Returns True when every
    connection closed in time; the rest are closed."""
    srv.close()
    links = list(srv.wsgate.links)
    for l in links:
        try:
            await l.write(p.drain())
        except (ConnectionError, OSError):
            pass
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while srv.wsgate.links and loop.time() < deadline:
        await asyncio.sleep(0.01)
    for l in list(srv.wsgate.links):
        l.writer.close()
    return not srv.wsgate.links


async def serve(address, handler, max_clients=0, mode=0o777):
    """Serve until cancelled."""
    srv = await start(address, handler, max_clients, mode)
    async with srv:
        await srv.serve_forever()
