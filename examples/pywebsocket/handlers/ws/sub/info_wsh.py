# A handler in a subdirectory: its resource is /ws/sub/info.
def web_socket_do_extra_handshake(request):
    pass


def web_socket_transfer_data(request):
    request.ws_stream.send_message('%s %s %d' % (request.ws_resource, request.ws_origin, request.ws_version))
