# Picks "chat.v2" when the client offers it, else the first it offered.
def web_socket_do_extra_handshake(request):
    protocols = request.ws_requested_protocols
    if protocols is None:
        return
    request.ws_protocol = 'chat.v2' if 'chat.v2' in protocols else protocols[0]


def web_socket_transfer_data(request):
    request.ws_stream.send_message('protocol: %s' % request.ws_protocol)
    request.ws_stream.receive_message()
