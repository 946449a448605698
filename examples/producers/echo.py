#!/usr/bin/env python3
"""ouistiti's websocket_echo as a wsgate producer, on the SDK's blocking
API (apache-ws style): every message goes back as it came.

    echo.py -R /run/wsgate -n pyecho [-u nobody] [-m 50] [--takeover]

With --takeover it replaces a running instance's socket; the running one
sees its path taken, hands its clients over (drain) and exits.
"""
import queue
import time

import sample_options

from wsgate_producer import IO, Server


def main():
    opts = sample_options.parse(__doc__, "pyecho")
    server = Server(opts.socket, max_clients=opts.max_clients, take_over=opts.takeover)
    sample_options.drop_privileges(opts.user)
    print("listening on", opts.socket, flush=True)
    draining, check = False, 0.0
    while not (draining and server.drained()):
        if not draining and time.monotonic() >= check:
            check = time.monotonic() + 0.1
            if server.replaced():
                server.drain(wait=False)
                draining = True
        try:
            ev = server.dequeue(timeout=0.1)
        except queue.Empty:
            continue
        if ev.type == IO:
            ev.respond(ev.read())


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
