# An echo handler as pywebsocket's users wrote them: text and binary come
# back as they came, and "Goodbye" ends the conversation.
from mod_pywebsocket import msgutil

_GOODBYE_MESSAGE = u'Goodbye'


def web_socket_do_extra_handshake(request):
    # Accept every client.
    pass


def web_socket_transfer_data(request):
    while True:
        line = request.ws_stream.receive_message()
        if line is None:
            return
        if isinstance(line, str):
            request.ws_stream.send_message(line, binary=False)
            if line == _GOODBYE_MESSAGE:
                return
        else:
            request.ws_stream.send_message(line, binary=True)
