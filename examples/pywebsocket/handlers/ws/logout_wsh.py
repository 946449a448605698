# Logs the client out as a pywebsocket application would: two cookies
# cleared in the 101, each with its own Set-Cookie header in
# extra_headers.
def web_socket_do_extra_handshake(request):
    request.extra_headers.append(('Set-Cookie', 'session=; Max-Age=0; Path=/'))
    request.extra_headers.append(('Set-Cookie', 'remember_me=; Max-Age=0; Path=/'))
    request.extra_headers.append(('X-Logged-Out', 'yes'))


def web_socket_transfer_data(request):
    request.ws_stream.send_message('bye')
