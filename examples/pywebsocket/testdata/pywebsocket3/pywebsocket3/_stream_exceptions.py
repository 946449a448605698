class ConnectionTerminatedException(Exception):
    pass


class InvalidFrameException(ConnectionTerminatedException):
    pass


class BadOperationException(Exception):
    pass


class UnsupportedFrameException(Exception):
    pass


class InvalidUTF8Exception(Exception):
    pass
