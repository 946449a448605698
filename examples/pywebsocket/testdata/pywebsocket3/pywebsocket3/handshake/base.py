class AbortedByUserException(Exception):
    pass


class HandshakeException(Exception):
    def __init__(self, name, status=None):
        super().__init__(name)
        self.status = status


class VersionException(HandshakeException):
    pass
