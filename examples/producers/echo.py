#!/usr/bin/env python3
"""ouistiti's websocket_echo as a wsgate producer, on the SDK's blocking
API (apache-ws style): every message goes back as it came.

    echo.py -R /run/wsgate -n pyecho [-u nobody] [-m 50]
"""
import sample_options

from wsgate_producer import IO, Server


def main():
    opts = sample_options.parse(__doc__, "pyecho")
    server = Server(opts.socket, max_clients=opts.max_clients)
    sample_options.drop_privileges(opts.user)
    print("listening on", opts.socket, flush=True)
    while True:
        ev = server.dequeue()
        if ev.type == IO:
            ev.respond(ev.read())


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
