"""A minimal stand-in for the gateway's side of the protocol, for the
SDK's own tests."""
import socket
import struct

from wsgate_producer import protocol as p


class FakeGateway:
    def __init__(self, path, mode=p.MODE_MUX, route="/test"):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.sock.sendall(p.hello(mode, route))
        reply = self.read()
        assert reply.type == p.HELLO_REPLY and reply.version == 1, reply.type

    def read_exactly(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def read(self):
        return p.read_frame(self.read_exactly)

    def send(self, frame):
        self.sock.sendall(frame)

    def close(self):
        self.sock.close()
