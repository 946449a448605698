"""The stream a handler reads and writes (request.ws_stream), and the
exceptions pywebsocket's stream module defines.

Messages arrive whole: wsgate reassembles fragments, answers pings and
checks UTF-8 before the producer sees anything. A message sent with
end=False is kept until the call with end=True and then sent as one
message, which the client receives exactly as it would the fragments."""
import queue
import threading

from . import common


class ConnectionTerminatedException(Exception):
    """The connection ended without a closing handshake."""


class InvalidFrameException(ConnectionTerminatedException):
    """Closes with 1002 when raised from web_socket_transfer_data."""


class BadOperationException(Exception):
    """An operation the connection's state does not allow; closes with 1011
    when raised from web_socket_transfer_data."""


class UnsupportedFrameException(Exception):
    """Closes with 1003 when raised from web_socket_transfer_data."""


class InvalidUTF8Exception(Exception):
    """Closes with 1007 when raised from web_socket_transfer_data."""


# What Stream.feed puts in its queue when the client's connection ends.
_CLOSED = object()

# How long close_connection waits for the client's close, as pywebsocket
# waits for the closing handshake's reply.
CLOSE_WAIT = 10.0


class Stream:
    """request.ws_stream: receive_message, send_message, send_ping and
    close_connection, as pywebsocket's hybi stream offers them."""

    def __init__(self, request, client, passive_closing_handshake=None):
        self._request = request
        self._client = client
        self._passive = passive_closing_handshake
        self._queue = queue.Queue()
        self._lock = threading.Lock()
        self._fragments = []
        self._fragment_binary = False
        self._closed_event = threading.Event()
        self.client_terminated = False
        self.server_terminated = False
        self._vanished = False

    # Called by the runner.
    def feed(self, data):
        self._queue.put(data)

    def feed_closed(self, code, reason):
        """The client's connection ended: with its close code, or 1006."""
        self._request.ws_close_code = code
        self._request.ws_close_reason = reason
        if code == common.STATUS_ABNORMAL_CLOSURE:
            self._vanished = True
        self._queue.put(_CLOSED)
        self._closed_event.set()

    # The handler's API.
    def receive_message(self):
        """The next message: str for text, bytes for binary; None once the
        client has closed. Blocks until one comes."""
        if self.client_terminated:
            raise BadOperationException("Requested receive_message after receiving a closing handshake")
        if self.server_terminated:
            raise BadOperationException("Requested receive_message after sending out a closing handshake")
        item = self._queue.get()
        if item is _CLOSED:
            self.client_terminated = True
            if self._vanished:
                raise ConnectionTerminatedException("Receiving frame failed: the client's connection ended")
            if self._passive is not None:
                # The gateway has already answered the client's close,
                # echoing its code; the hook runs for what else it does.
                self._passive(self._request)
            return None
        return item

    def send_message(self, message, end=True, binary=False):
        """Sends str as text (bytes with binary=True). end=False keeps the
        part until a call with end=True completes the message."""
        if self.server_terminated:
            raise BadOperationException("Requested send_message after sending out a closing handshake")
        if binary and isinstance(message, str):
            raise BadOperationException("Message for binary frame must be instance of bytes")
        if not binary and isinstance(message, (bytes, bytearray)):
            message = bytes(message).decode("utf-8")
        with self._lock:
            if self._fragments and self._fragment_binary != binary:
                raise BadOperationException("Message types are different in frames for the same message")
            self._fragments.append(message)
            self._fragment_binary = binary
            if not end:
                return
            parts, self._fragments = self._fragments, []
        whole = b"".join(parts) if binary else "".join(parts)
        try:
            self._client.send(whole)
        except ConnectionError:
            raise BadOperationException("Requested send_message after the connection closed") from None

    def send_ping(self, body=b""):
        """Pings are wsgate's (keepalive_interval); a handler's ping is not
        sent, and its pong never comes."""
        if self.server_terminated:
            raise BadOperationException("Requested send_ping after sending out a closing handshake")

    def close_connection(self, code=common.STATUS_NORMAL_CLOSURE, reason="", wait_response=True):
        """Starts the closing handshake and, unless wait_response is False,
        waits for the client's reply; its code is then in
        request.ws_close_code."""
        if self.server_terminated:
            return
        if code is None:
            code = 0  # an empty close frame
        elif not (1000 <= code <= 4999) or code in (1004, 1005, 1006, 1015):
            raise BadOperationException("Status code is out of range")
        self.server_terminated = True
        if self._client.closed:
            return
        try:
            self._client.close(code, reason or "")
        except ConnectionError:
            return
        if wait_response and code not in (common.STATUS_GOING_AWAY, common.STATUS_PROTOCOL_ERROR):
            self._closed_event.wait(CLOSE_WAIT)
