"""Serves mod_pywebsocket handler files, unchanged, as a wsgate producer.

    python3 -m wsgate_producer.pywebsocket -w HANDLER_ROOT [-s SCAN_DIR]
        [-m MAP_FILE] [--allow-handlers-outside-root-dir] --socket PATH

Every handler pywebsocket's dispatcher would serve (each ``*_wsh.py`` under
the scan directory, plus the aliases of the map file) is served by this one
producer; a wsgate route (a backend, usually a prefix such as ``/ws/``)
points at the socket. The request path is the resource, as in pywebsocket:
``/ws/echo`` is served by ``<root>/ws/echo_wsh.py``.

Each client runs as it did under pywebsocket: web_socket_do_extra_handshake
decides the handshake (an exception refuses it with 403), then
web_socket_transfer_data runs in a thread of its own; when it returns the
connection is closed, and its exceptions close it with pywebsocket's codes.
"""
import argparse
import logging
import re
import sys
import threading
import traceback

from mod_pywebsocket import common, dispatch, handshake, stream

from . import ACCEPT, CLOSE, IO, Server

log = logging.getLogger("wsgate_producer.pywebsocket")


class _Headers(dict):
    """headers_in: the request's headers, looked up case-insensitively, as
    mod_python's table and the standalone server's message object are."""

    def __init__(self, headers):
        super().__init__((k.lower(), v) for k, v in headers.items())
        self._names = {k.lower(): k for k in headers}

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)

    def items(self):
        return [(self._names[k], v) for k, v in super().items()]


def _split_addr(addr, default_port=0):
    host, sep, port = addr.rpartition(":")
    if not sep or "]" in port or (host.count(":") and not host.endswith("]")):
        host, port = addr, ""  # no port: a bare name or IPv6 address
    return host.strip("[]"), int(port) if port.isdigit() else default_port


class _Connection:
    """request.connection: the client's and the server's addresses, as
    mod_python's connection and pywebsocket's standalone connection give
    them. The socket itself stays in wsgate: read, write and
    get_memorized_lines cannot be offered (the README lists them)."""

    def __init__(self, remote, host, tls):
        self.remote_addr = _split_addr(remote)
        self.remote_ip = self.remote_addr[0]
        # The address the client asked for (its Host, with the scheme's
        # port when it names none): the gateway's listener, or the proxy
        # in front of it. The OPEN frame carries no socket address of the
        # gateway's own.
        self.local_addr = _split_addr(host or "", 443 if tls else 80)

    def get_remote_addr(self):
        return self.remote_addr

    def get_local_addr(self):
        return self.local_addr

    def _raw(self, *args, **kwargs):
        raise NotImplementedError(
            "request.connection's raw socket stays in wsgate: use request.ws_stream "
            "(send_message, receive_message, close_connection) instead")

    write = read = get_memorized_lines = _raw


class Request:
    """What a handler gets: pywebsocket's request attributes, filled from
    what wsgate's OPEN frame says about the client."""

    def __init__(self, client):
        self.uri = client.path + ("?" + client.query if client.query else "")
        self.unparsed_uri = self.uri
        self.method = "GET"
        self.protocol = "HTTP/1.1"
        self.headers_in = _Headers(client.headers)
        self.headers_in.setdefault("host", client.host)
        self.connection = _Connection(client.remote, client.host, client.tls)
        self._tls = client.tls
        self.ws_resource = self.uri
        self.ws_origin = self.headers_in.get("Origin")
        self.ws_version = common.VERSION_HYBI_LATEST
        self.ws_requested_protocols = list(client.protocols) or None
        self.ws_protocol = None
        # Extensions are negotiated by wsgate (permessage-deflate per route).
        self.ws_requested_extensions = None
        self.ws_extensions = None
        self.ws_extension_processors = []
        self.extra_headers = []
        self.ws_close_code = None
        self.ws_close_reason = None
        self.on_ping_handler = None
        self.on_pong_handler = None
        self.ws_stream = None
        self.client = client

    def is_https(self):
        return self._tls


class Runner:
    """Turns the producer's events into pywebsocket's handler calls."""

    def __init__(self, dispatcher, server):
        self.dispatcher = dispatcher
        self.server = server
        self.streams = {}
        self.lock = threading.Lock()

    def serve(self):
        while True:
            ev = self.server.dequeue()
            if ev.type == ACCEPT:
                ev.defer()
                request = Request(ev.client)
                try:
                    suite = self.dispatcher.get_handler_suite(request.ws_resource)
                except dispatch.DispatchException as e:
                    log.info("%s: %s", request.ws_resource, e)
                    ev.refuse(e.status, str(e))
                    continue
                request.ws_stream = stream.Stream(request, ev.client, suite.passive_closing_handshake)
                with self.lock:
                    self.streams[ev.client.id] = request.ws_stream
                threading.Thread(target=self._run, args=(ev, request), daemon=True).start()
            elif ev.type == IO:
                with self.lock:
                    s = self.streams.get(ev.client.id)
                if s is not None:
                    s.feed(ev.read())
            elif ev.type == CLOSE:
                with self.lock:
                    s = self.streams.pop(ev.client.id, None)
                if s is not None:
                    s.feed_closed(ev.code, ev.reason)

    def _run(self, ev, request):
        try:
            if not self._handshake(ev, request):
                with self.lock:
                    self.streams.pop(ev.client.id, None)
                return
            self.dispatcher.transfer_data(request)
        except handshake.AbortedByUserException as e:
            log.debug("%s: aborted by the handler: %s", request.ws_resource, e)
            self._close(request, None)
        except Exception:
            log.error("%s: web_socket_transfer_data raised an exception:\n%s", request.ws_resource,
                      traceback.format_exc())
            self._close(request, common.STATUS_INTERNAL_ENDPOINT_ERROR)

    def _close(self, request, code):
        try:
            request.ws_stream.close_connection(code, wait_response=False)
        except (stream.BadOperationException, ConnectionError):
            pass

    def _handshake(self, ev, request):
        try:
            self.dispatcher.do_extra_handshake(request)
            requested = request.ws_requested_protocols
            if requested is not None:
                if request.ws_protocol is None:
                    raise handshake.HandshakeException(
                        "do_extra_handshake must choose one subprotocol from ws_requested_protocols "
                        "and set it to ws_protocol")
                if request.ws_protocol not in requested:
                    raise handshake.HandshakeException(
                        "ws_protocol %r is not one of ws_requested_protocols" % request.ws_protocol)
        except handshake.AbortedByUserException as e:
            # pywebsocket drops the connection; the gateway can only refuse.
            log.debug("%s: handshake aborted by the handler: %s", request.ws_resource, e)
            ev.refuse(common.HTTP_STATUS_FORBIDDEN, "aborted by the handler")
            return False
        except handshake.HandshakeException as e:
            log.info("%s: handshake refused: %s", request.ws_resource, e)
            ev.refuse(e.status or common.HTTP_STATUS_BAD_REQUEST, str(e))
            return False
        except dispatch.DispatchException as e:
            ev.refuse(e.status, str(e))
            return False
        # Every pair goes to the 101 as written, in order, as pywebsocket
        # wrote extra_headers: two Set-Cookie headers stay two.
        ev.accept(request.ws_protocol or "", list(request.extra_headers))
        return True


def load_map(dispatcher, path):
    """Adds the aliases of a map file: lines of "alias existing"; lines
    starting with # and blank lines are skipped, bad lines logged."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or line.isspace():
                continue
            m = re.match(r"(\S+)\s+(\S+)$", line.strip())
            if not m:
                log.warning("Wrong format in map file: %s", line.strip())
                continue
            try:
                dispatcher.add_resource_path_alias(m.group(1), m.group(2))
            except dispatch.DispatchException as e:
                log.error("%s", e)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m wsgate_producer.pywebsocket", description=__doc__.split("\n\n")[0])
    ap.add_argument("-w", "--websock-handlers", required=True, help="the handler root directory")
    ap.add_argument("-s", "--scan-dir", help="scan for handlers here (under the root; default: the root)")
    ap.add_argument("-m", "--websock-handlers-map-file", help="aliases: lines of 'alias existing'")
    ap.add_argument("--allow-handlers-outside-root-dir", action="store_true")
    ap.add_argument("--socket", required=True, help="the UNIX socket wsgate's route connects to")
    ap.add_argument("--mode", default="0777", help="the socket's permissions (octal)")
    ap.add_argument("--log-level", default="warning",
                    choices=["fine", "debug", "info", "warning", "warn", "error", "critical"])
    a = ap.parse_args(argv)
    level = {"fine": "DEBUG", "warn": "WARNING"}.get(a.log_level, a.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        d = dispatch.Dispatcher(a.websock_handlers, a.scan_dir, a.allow_handlers_outside_root_dir)
    except dispatch.DispatchException as e:
        print("pywebsocket: %s" % e, file=sys.stderr)
        return 2
    for w in d.source_warnings():
        log.warning("handler skipped: %s", w)
    if a.websock_handlers_map_file:
        load_map(d, a.websock_handlers_map_file)
    server = Server(a.socket, mode=int(a.mode, 8))
    log.info("serving %s on %s", ", ".join(d.resources()) or "no handlers", a.socket)
    try:
        Runner(d, server).serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
