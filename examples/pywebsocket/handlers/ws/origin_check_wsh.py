# pywebsocket never checks Origin itself: handlers do.
from mod_pywebsocket import handshake


def web_socket_do_extra_handshake(request):
    if request.ws_origin == 'http://example.com':
        return
    raise ValueError('Unacceptable origin: %r' % request.ws_origin)


def web_socket_transfer_data(request):
    request.ws_stream.send_message('origin ok: %s' % request.ws_origin)
