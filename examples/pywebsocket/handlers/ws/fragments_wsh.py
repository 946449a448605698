# Sends each message back in three fragments, and a binary one in two.
from mod_pywebsocket import msgutil


def web_socket_do_extra_handshake(request):
    pass


def web_socket_transfer_data(request):
    while True:
        message = msgutil.receive_message(request)
        if message is None:
            return
        if isinstance(message, bytes):
            request.ws_stream.send_message(message[:1], end=False, binary=True)
            request.ws_stream.send_message(message[1:], end=True, binary=True)
            continue
        third = max(1, len(message) // 3)
        msgutil.send_message(request, message[:third], end=False)
        msgutil.send_message(request, message[third:2 * third], end=False)
        msgutil.send_message(request, message[2 * third:], end=True)
