"""pywebsocket's message utilities: functions over request.ws_stream and
the MessageReceiver and MessageSender helper threads."""
import queue
import threading

# Handlers catch these through msgutil.
from .stream import (  # noqa: F401
    BadOperationException,
    ConnectionTerminatedException,
    InvalidFrameException,
    InvalidUTF8Exception,
    UnsupportedFrameException,
)


def close_connection(request):
    request.ws_stream.close_connection()


def send_message(request, message, end=True, binary=False):
    request.ws_stream.send_message(message, end, binary)


def receive_message(request):
    return request.ws_stream.receive_message()


def send_ping(request, body=b""):
    request.ws_stream.send_ping(body)


class MessageReceiver(threading.Thread):
    """Receives messages on its own thread: through onmessage when it is
    given, else into a queue read by receive() or receive_nowait()."""

    def __init__(self, request, onmessage=None):
        super().__init__(daemon=True)
        self._request = request
        self._queue = queue.Queue()
        self._onmessage = onmessage
        self._stop_requested = False
        self.start()

    def run(self):
        try:
            while not self._stop_requested:
                message = receive_message(self._request)
                if self._onmessage:
                    self._onmessage(message)
                else:
                    self._queue.put(message)
                if message is None:
                    return
        except (BadOperationException, ConnectionTerminatedException):
            pass
        finally:
            close_connection(self._request)

    def receive(self):
        return self._queue.get()

    def receive_nowait(self):
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def stop(self):
        self._stop_requested = True


class MessageSender(threading.Thread):
    """Sends messages from its own thread: send() waits until the message
    is sent, send_nowait() does not."""

    def __init__(self, request):
        super().__init__(daemon=True)
        self._request = request
        self._queue = queue.Queue()
        self.start()

    def run(self):
        while True:
            message, done = self._queue.get()
            try:
                send_message(self._request, message)
            finally:
                done.set()

    def send(self, message):
        done = threading.Event()
        self._queue.put((message, done))
        done.wait()

    def send_nowait(self, message):
        self._queue.put((message, threading.Event()))
