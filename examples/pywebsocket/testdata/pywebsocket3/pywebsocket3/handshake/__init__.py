from pywebsocket3.handshake.base import (  # noqa: F401
    AbortedByUserException, HandshakeException, VersionException)
