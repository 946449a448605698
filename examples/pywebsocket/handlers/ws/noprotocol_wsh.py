# Forgets to choose among the requested subprotocols: pywebsocket refuses.
def web_socket_do_extra_handshake(request):
    pass


def web_socket_transfer_data(request):
    pass
