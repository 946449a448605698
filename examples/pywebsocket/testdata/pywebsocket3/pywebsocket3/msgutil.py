def send_message(request, message, end=True, binary=False):
    return request.ws_stream.send_message(message, end, binary)


def receive_message(request):
    return request.ws_stream.receive_message()
