# A bug in a handler: any other exception also ends with 1011.
def web_socket_do_extra_handshake(request):
    pass


def web_socket_transfer_data(request):
    request.ws_stream.receive_message()
    return {}['missing']
