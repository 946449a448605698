"""The blocking API, in the spirit of apache-ws's producer library:
Server(path).dequeue() returns Accept, IO and Close events."""
import os
import queue
import socket
import stat
import threading
import time

from . import protocol as p

ACCEPT = "accept"
IO = "io"
CLOSE = "close"


class Client(p.ClientInfo):
    """One WebSocket client, as the gateway described it."""

    def send(self, data):
        """Send a message: str as text, bytes as binary."""
        if self.closed:
            raise ConnectionError("client closed")
        self._link.write(p.send(self.id, data))

    def close(self, code=1000, reason=""):
        self._link.write(p.close(self.id, code, reason))

    def join(self, room):
        self._link.write(p.join(self.id, room))

    def leave(self, room):
        self._link.write(p.leave(self.id, room))

    def broadcast(self, data, except_self=False):
        """Send to every client of this client's route."""
        self._link.write(p.broadcast(data, self.id if except_self else 0))

    def send_room(self, room, data, except_self=False):
        self._link.write(p.room(room, data, self.id if except_self else 0))

    def count(self, room="", timeout=5.0):
        """How many clients are in room ("" for the route) on every gateway
        process sharing the route's bus, and how many processes counted:
        (count, nodes). Raises TimeoutError when no answer comes."""
        return self._link.count(room, timeout)


class Event:
    """An Accept, IO or Close event."""

    def __init__(self, type, client, data=None, code=None, reason=None):
        self.type = type
        self.client = client
        self._data = data
        self.code = code
        self.reason = reason
        self._decided = type != ACCEPT

    def read(self):
        """The message of an IO event: str for text, bytes for binary."""
        return self._data

    def respond(self, data):
        """Send a message back to the event's client."""
        self.client.send(data)

    def accept(self, subprotocol="", headers=None):
        """Accept an Accept event's client (done for you by the next
        dequeue() when you do not decide). headers are added to the 101:
        a list of (name, value) pairs, where a name may repeat (two
        Set-Cookie headers), or a dict whose values are strings or lists."""
        if self._decided:
            return
        self._decided = True
        self.client._link.write(p.accept(self.client.id, subprotocol, headers))

    def defer(self):
        """Take an Accept event's decision away from dequeue(): accept()
        or refuse() will be called later, from any thread (a handshake
        hook that may block, say). The gateway waits for it up to its
        open_timeout."""
        self._deferred = True

    def refuse(self, status=403, reason=""):
        """Refuse an Accept event's client with an HTTP status."""
        if self._decided:
            return
        self._decided = True
        self.client.closed = True
        self.client._link.forget(self.client.id)
        self.client._link.write(p.refuse(self.client.id, status, reason))


class _Link:
    """One connection from the gateway, read by its own thread."""

    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.route = None
        self.lock = threading.Lock()
        self.clients = {}
        self.alive = True
        self.counts = {}
        self.next_id = 0
        self.drained = False
        self.max_frame = 0

    def write(self, frame):
        p.check_size(frame, self.max_frame)
        with self.lock:
            if not self.alive:
                raise ConnectionError("gateway connection closed")
            self.sock.sendall(frame)

    def count(self, room, timeout):
        done = threading.Event()
        with self.lock:
            self.next_id += 1
            req = self.next_id
            self.counts[req] = [done, None]
        self.write(p.count(req, room))
        if not done.wait(timeout):
            with self.lock:
                self.counts.pop(req, None)
            raise TimeoutError("the gateway did not answer COUNT")
        f = self.counts.pop(req)[1]
        return f.count, f.nodes

    def forget(self, conn):
        self.clients.pop(conn, None)

    def read_exactly(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def run(self):
        try:
            hello = p.read_frame(self.read_exactly)
            if hello.type != p.HELLO:
                return
            self.route = hello.route
            self.max_frame = hello.max_frame
            self.write(p.hello_reply())
            while True:
                f = p.read_frame(self.read_exactly, self.server.max_frame)
                if f.type == p.OPEN:
                    c = Client(self, f)
                    self.clients[c.id] = c
                    if self.server.max_clients and self.server.client_count() > self.server.max_clients:
                        self.forget(c.id)
                        self.write(p.refuse(c.id, 503, "too many clients"))
                        continue
                    self.server._events.put(Event(ACCEPT, c))
                elif f.type == p.MESSAGE:
                    c = self.clients.get(f.conn)
                    if c is not None:
                        self.server._events.put(Event(IO, c, data=f.data()))
                elif f.type == p.CLOSED:
                    c = self.clients.pop(f.conn, None)
                    if c is not None:
                        c.closed = True
                        self.server._events.put(Event(CLOSE, c, code=f.code, reason=f.reason))
                elif f.type == p.COUNTED:
                    with self.lock:
                        w = self.counts.get(f.id)
                    if w is not None:
                        w[1] = f
                        w[0].set()
                elif f.type == p.DRAINED:
                    # Nothing more comes here: wait (a little) until the
                    # application has handled what came before, then close.
                    self.drained = True
                    self.server._wait_served(self)
                    return
        except (EOFError, OSError, p.ProtocolError):
            pass
        finally:
            with self.lock:
                self.alive = False
            self.sock.close()
            code, reason = (1012, "moved") if self.drained else (1006, "gateway connection lost")
            for c in list(self.clients.values()):
                c.closed = True
                self.server._events.put(Event(CLOSE, c, code=code, reason=reason))
            self.clients.clear()
            self.server._drop(self)


class Server:
    """Listens on a UNIX socket (or a (host, port) on loopback) for the
    gateway's connections, and turns what they carry into events."""

    def __init__(self, address, max_clients=0, mode=0o777, max_frame=64 << 20, take_over=False):
        self.max_clients = max_clients
        self.max_frame = max_frame
        self._events = queue.Queue()
        self._links = set()
        self._lock = threading.Lock()
        self._last = None
        if isinstance(address, tuple):
            self.sock = socket.create_server(address)
        else:
            self.sock = listen_unix(address, mode, take_over=take_over)
        self.address = address if not isinstance(address, tuple) else self.sock.getsockname()
        self._stat = None if isinstance(address, tuple) else os.stat(address)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            link = _Link(self, s)
            with self._lock:
                self._links.add(link)
            threading.Thread(target=link.run, daemon=True).start()

    def _drop(self, link):
        with self._lock:
            self._links.discard(link)

    def client_count(self):
        with self._lock:
            return sum(len(l.clients) for l in self._links)

    def dequeue(self, timeout=None):
        """The next event. An Accept event returned by the previous call and
        not decided is accepted now. Raises queue.Empty on timeout."""
        if self._last is not None and self._last.type == ACCEPT and not getattr(self._last, "_deferred", False):
            self._last.accept()
        self._last = None  # handled: drain() may close its connection now
        self._last = self._events.get(timeout=timeout)
        return self._last

    def broadcast(self, data, route=None):
        """Send to every client of a route (the first one known if None)."""
        with self._lock:
            links = [l for l in self._links if route is None or l.route == route]
        if links:
            links[0].write(p.broadcast(data))

    def _wait_served(self, link, timeout=5.0):
        """Wait (a little) until the application has handled every event of
        link: none is queued, and the one dequeue() returned last (which the
        application is handling until it calls dequeue() again) is not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self._last
            busy = last is not None and last.client._link is link
            if not busy and not any(e.client._link is link for e in list(self._events.queue)):
                return
            time.sleep(0.005)

    def drain(self, timeout=30.0, wait=True):
        """Hand this instance's clients to the next one (a planned handover):
        start the new instance first, with take_over=True, then call drain()
        on the old one. It stops accepting and sends DRAIN on every gateway
        connection; the gateway moves each connection's clients once this
        instance has served what was already sent to it, and they get Close
        events with 1012 and "moved" here. Keep calling dequeue() meanwhile:
        from another thread with wait=True (drain returns True when every
        connection closed within timeout; the rest are closed), or in the
        same loop with wait=False, until drained() says it is over."""
        self.sock.close()
        with self._lock:
            links = list(self._links)
            self._draining = True
        for l in links:
            try:
                l.write(p.drain())
            except ConnectionError:
                pass
        if not wait:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.drained():
                return True
            time.sleep(0.01)
        self.close()
        return False

    def drained(self):
        """Whether drain() has begun and every gateway connection has closed."""
        with self._lock:
            return getattr(self, "_draining", False) and not self._links

    def replaced(self):
        """Whether another instance has put its socket at this server's
        path (listen_unix with take_over=True): the moment to drain()."""
        return self._stat is not None and _replaced(self.address, self._stat)

    def close(self):
        self.sock.close()
        with self._lock:
            links = list(self._links)
        for l in links:
            try:
                l.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def listen_unix(path, mode=0o777, backlog=128, take_over=False):
    """Returns a socket listening at path. It is bound under a temporary
    name in the same directory, listening and given its mode, then renamed
    into place: a gateway that finds the path never finds it refusing
    connections, which it would count as the producer being down. A socket
    in use at path is an error, unless take_over: the new instance of a
    planned handover replaces it, and the old one drains."""
    _remove_stale(path, take_over)
    tmp = os.path.join(os.path.dirname(path), ".wsgate-%d.sock" % os.getpid())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        s.bind(tmp)
        s.listen(backlog)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        s.close()
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return s


def _remove_stale(path, take_over=False):
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)
            else:
                probe.close()
                if not take_over:
                    raise OSError("%s is in use" % path)
            finally:
                probe.close()
    except FileNotFoundError:
        pass


def _replaced(path, st):
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino)
