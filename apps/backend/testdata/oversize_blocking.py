"""A producer on the blocking API that tries a send of the size a client
asks for ("send N" or "broadcast N"), and says "refused" when the SDK
refuses it for its size."""
import queue
import sys

from wsgate_producer import IO, MessageTooBig, Server

server = Server(sys.argv[1])
while True:
    try:
        ev = server.dequeue(timeout=1)
    except queue.Empty:
        continue
    if ev.type != IO:
        continue
    data = ev.read()
    if data is None:
        continue
    what, n = data.split()
    try:
        if what == "send":
            ev.client.send("x" * int(n))
        else:
            ev.client.broadcast("x" * int(n))
    except MessageTooBig:
        ev.client.send("refused")
