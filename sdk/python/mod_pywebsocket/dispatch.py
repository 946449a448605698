"""Finds and runs handler files the way pywebsocket's dispatcher does.

Every ``*_wsh.py`` file under the scan directory is a handler; its
resource is its path relative to the root directory without ``_wsh.py``
(``<root>/example/chat_wsh.py`` serves ``/example/chat``). A file that does
not load, or lacks one of the two required functions, is skipped and the
reason kept in source_warnings()."""
import logging
import os
import re

from . import common, handshake, stream

_DO_EXTRA_HANDSHAKE = "web_socket_do_extra_handshake"
_TRANSFER_DATA = "web_socket_transfer_data"
_PASSIVE_CLOSING_HANDSHAKE = "web_socket_passive_closing_handshake"
_SUFFIX = "_wsh.py"

log = logging.getLogger("mod_pywebsocket.dispatch")

# What web_socket_transfer_data may raise, and the code pywebsocket closes
# with for each (the first class that matches).
_CLOSE_CODES = (
    (stream.BadOperationException, common.STATUS_INTERNAL_ENDPOINT_ERROR),
    (stream.InvalidFrameException, common.STATUS_PROTOCOL_ERROR),
    (stream.UnsupportedFrameException, common.STATUS_UNSUPPORTED_DATA),
    (stream.InvalidUTF8Exception, common.STATUS_INVALID_FRAME_PAYLOAD_DATA),
)
_CLOSING_ERRORS = tuple(cls for cls, _ in _CLOSE_CODES)


def _named(e, name):
    """Whether e is of a class called name, whatever package defined it:
    a handler may raise the real pywebsocket3's (or mod_pywebsocket's)
    exceptions when that package is installed ahead of the SDK's."""
    return any(cls.__name__ == name for cls in type(e).__mro__)


def _as_ours(e):
    """The SDK's own exception for one from another pywebsocket package,
    or None when e is not one of pywebsocket's; e itself when it is ours."""
    if isinstance(e, (handshake.AbortedByUserException, handshake.HandshakeException,
                      stream.ConnectionTerminatedException, stream.BadOperationException,
                      stream.UnsupportedFrameException, stream.InvalidUTF8Exception)):
        return e
    if _named(e, "AbortedByUserException"):
        return handshake.AbortedByUserException(str(e))
    if _named(e, "VersionException") or _named(e, "HandshakeException"):
        return handshake.HandshakeException(str(e), getattr(e, "status", None))
    for cls in (stream.InvalidFrameException, stream.ConnectionTerminatedException,
                stream.BadOperationException, stream.UnsupportedFrameException, stream.InvalidUTF8Exception):
        if _named(e, cls.__name__):
            return cls(str(e))
    return None


class DispatchException(Exception):
    """No handler, or a request the dispatcher refuses, with its status."""

    def __init__(self, name, status=common.HTTP_STATUS_NOT_FOUND):
        super().__init__(name)
        self.status = status


def _default_passive_closing_handshake(request):
    return common.STATUS_NORMAL_CLOSURE, ""


def _normalize(path):
    return os.path.realpath(path).rstrip(os.sep) + os.sep


class _HandlerSuite:
    def __init__(self, do_extra_handshake, transfer_data, passive_closing_handshake):
        self.do_extra_handshake = do_extra_handshake
        self.transfer_data = transfer_data
        self.passive_closing_handshake = passive_closing_handshake


def _load(path):
    with open(path, encoding="utf-8") as f:
        source = f.read()
    # Each handler gets its own globals, as pywebsocket's exec gives it.
    scope = {"__file__": path, "__name__": "_wsh_" + re.sub(r"\W", "_", path), "__builtins__": __builtins__}
    exec(compile(source, path, "exec"), scope)
    missing = [n for n in (_DO_EXTRA_HANDSHAKE, _TRANSFER_DATA) if not callable(scope.get(n))]
    if missing:
        raise DispatchException("%s is not defined" % " and ".join(missing))
    return _HandlerSuite(scope[_DO_EXTRA_HANDSHAKE], scope[_TRANSFER_DATA],
                         scope.get(_PASSIVE_CLOSING_HANDSHAKE) or _default_passive_closing_handshake)


class Dispatcher:
    def __init__(self, root_dir, scan_dir=None, allow_handlers_outside_root_dir=False):
        self._root = _normalize(root_dir)
        scan = _normalize(scan_dir or root_dir)
        if not scan.startswith(self._root):
            raise DispatchException("scan_dir:%s must be a directory under root_dir:%s." % (scan_dir, root_dir))
        self._allow_outside = allow_handlers_outside_root_dir
        self._handlers = {}
        self._warnings = []
        self._scan(scan)

    def _resource(self, path):
        real = os.path.realpath(path)
        if real.startswith(self._root):
            rel = real[len(self._root):]
        elif self._allow_outside:
            rel = os.path.relpath(os.path.abspath(path), self._root)
        else:
            return None
        return "/" + rel[:-len(_SUFFIX)].replace(os.sep, "/")

    def _scan(self, scan):
        for root, dirs, files in os.walk(scan, followlinks=True):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith(_SUFFIX):
                    continue
                path = os.path.join(root, name)
                resource = self._resource(path)
                if resource is None:
                    self._warnings.append("%s: outside the root directory, skipped" % path)
                    continue
                try:
                    self._handlers[resource] = _load(path)
                except Exception as e:
                    self._warnings.append("%s: %s: %s" % (path, type(e).__name__, e))

    def add_resource_path_alias(self, alias_resource_path, existing_resource_path):
        suite = self._handlers.get(existing_resource_path)
        if suite is None:
            raise DispatchException("No handler for: %r" % existing_resource_path)
        self._handlers[alias_resource_path] = suite

    def source_warnings(self):
        return list(self._warnings)

    def resources(self):
        return sorted(self._handlers)

    def get_handler_suite(self, resource):
        """The handlers for a request's resource; a query is ignored, a
        fragment refused with 400, an unknown resource with 404."""
        path, _, _ = resource.partition("?")
        if "#" in path:
            raise DispatchException("Fragment identifiers MUST NOT be used on WebSocket URIs",
                                    common.HTTP_STATUS_BAD_REQUEST)
        suite = self._handlers.get(path)
        if suite is None:
            raise DispatchException("No handler for: %r" % path)
        return suite

    def do_extra_handshake(self, request):
        """Runs the handler's web_socket_do_extra_handshake: any exception
        but AbortedByUserException refuses the handshake with 403."""
        suite = self.get_handler_suite(request.ws_resource)
        try:
            suite.do_extra_handshake(request)
        except handshake.AbortedByUserException:
            raise
        except handshake.HandshakeException:
            raise
        except Exception as e:
            ours = _as_ours(e)
            if isinstance(ours, (handshake.AbortedByUserException, handshake.HandshakeException)):
                raise ours from e
            raise handshake.HandshakeException(
                "%s raised exception for %s: %s" % (_DO_EXTRA_HANDSHAKE, request.ws_resource, e),
                common.HTTP_STATUS_FORBIDDEN) from e

    def transfer_data(self, request):
        """Runs web_socket_transfer_data, then closes the connection;
        exceptions close it with pywebsocket's codes."""
        suite = self.get_handler_suite(request.ws_resource)
        try:
            try:
                try:
                    suite.transfer_data(request)
                except Exception as e:
                    ours = _as_ours(e)
                    if ours is None or ours is e:
                        raise
                    raise ours from e
            except handshake.AbortedByUserException:
                raise
            except _CLOSING_ERRORS as e:
                log.debug("%s", e)
                request.ws_stream.close_connection(next(code for cls, code in _CLOSE_CODES if isinstance(e, cls)))
            except stream.ConnectionTerminatedException as e:
                log.debug("%s", e)
            else:
                request.ws_stream.close_connection()
        except stream.BadOperationException as e:
            # close_connection itself refused (a code out of range).
            log.debug("%s", e)

    def passive_closing_handshake(self, request):
        return self.get_handler_suite(request.ws_resource).passive_closing_handshake(request)
