# MessageReceiver and MessageSender, pywebsocket's helper threads: every
# message is answered from the sender thread, upper-cased.
from mod_pywebsocket import msgutil


def web_socket_do_extra_handshake(request):
    pass


def web_socket_transfer_data(request):
    sender = msgutil.MessageSender(request)
    receiver = msgutil.MessageReceiver(request)
    while True:
        message = receiver.receive()
        if message is None:
            return
        sender.send(message.upper())
