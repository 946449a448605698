from pywebsocket3._stream_exceptions import (  # noqa: F401
    BadOperationException, ConnectionTerminatedException, InvalidFrameException,
    InvalidUTF8Exception, UnsupportedFrameException)
