# Reads the client's cookies from headers_in and sets one in the 101
# through extra_headers.
def web_socket_do_extra_handshake(request):
    cookie = request.headers_in.get('Cookie')
    request.extra_headers.append(('Set-Cookie', 'ws_seen=%s; Path=/' % (cookie or 'none')))


def web_socket_transfer_data(request):
    message = request.ws_stream.receive_message()
    if message == 'cookie':
        request.ws_stream.send_message(request.headers_in.get('cookie') or '')
