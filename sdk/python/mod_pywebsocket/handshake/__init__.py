"""The handshake exceptions a handler raises from
web_socket_do_extra_handshake."""


class HandshakeException(Exception):
    """Refuses the handshake with an HTTP status (400 when none is given)."""

    def __init__(self, name, status=None):
        super().__init__(name)
        self.status = status


class VersionException(HandshakeException):
    def __init__(self, name, supported_versions=""):
        super().__init__(name, 400)
        self.supported_versions = supported_versions


class AbortedByUserException(Exception):
    """Raised by a handler to abort the connection without a WebSocket
    close: in web_socket_do_extra_handshake the client is refused, in
    web_socket_transfer_data its connection ends with no close code."""
