# Does not load: pywebsocket skips it and says why.
def web_socket_do_extra_handshake(request)
    pass
