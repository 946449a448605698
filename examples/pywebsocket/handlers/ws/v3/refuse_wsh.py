# pywebsocket3's way of refusing a client in the handshake.
from pywebsocket3 import handshake


def web_socket_do_extra_handshake(request):
    raise handshake.AbortedByUserException('not today')


def web_socket_transfer_data(request):
    pass
