"""Pushpin's WebSocket-over-HTTP event format (application/websocket-events),
shared by the WSGI examples: a body is a run of events, each "TYPE\\r\\n" or
"TYPE <hex size>\\r\\n<content>\\r\\n"; and the standard library's WSGI
server they run under (any WSGI server runs their `app` the same way)."""
import socketserver
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


def parse(body):
    """The events of a body: (type, content or None) pairs."""
    events = []
    while body:
        line, body = body.split(b"\r\n", 1)
        typ, _, size = line.decode().partition(" ")
        content = None
        if size:
            n = int(size, 16)
            content, body = body[:n], body[n + 2:]
        events.append((typ, content))
    return events


def event(typ, content=None):
    """One event, encoded."""
    if content is None:
        return typ.encode() + b"\r\n"
    return b"%s %x\r\n%s\r\n" % (typ.encode(), len(content), content)


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve(app, port):
    """Serves app on 127.0.0.1:port with a thread per request, saying the
    port it got (for --port 0) on stdout first."""
    with make_server("127.0.0.1", port, app, _Server, _Quiet) as srv:
        print("serving on 127.0.0.1:%d" % srv.server_port, flush=True)
        srv.serve_forever()
