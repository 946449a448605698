# A handler written for pywebsocket3, the maintained fork: its modules are
# imported under that name. Echoes, reports the connection's addresses,
# and ends the ways pywebsocket3's handlers end.
from pywebsocket3 import common, handshake, msgutil, stream


def web_socket_do_extra_handshake(request):
    if request.headers_in.get('X-Deny'):
        raise handshake.HandshakeException('denied by header', common.HTTP_STATUS_FORBIDDEN)


def web_socket_transfer_data(request):
    while True:
        line = msgutil.receive_message(request)
        if line == 'addr':
            remote = request.connection.remote_addr
            local = request.connection.get_local_addr()
            msgutil.send_message(request, '%s %d %s %d' % (remote[0], remote[1], local[0], local[1]))
        elif line == 'abort':
            raise handshake.AbortedByUserException('the handler ends it')
        elif line == 'bad-utf8':
            raise stream.InvalidUTF8Exception('the handler found bad UTF-8')
        elif line == 'raw-write':
            request.connection.write(b'x')
        else:
            msgutil.send_message(request, line)
