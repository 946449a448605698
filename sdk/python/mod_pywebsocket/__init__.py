"""mod_pywebsocket's import path, for pywebsocket handler files run behind
wsgate by ``python3 -m wsgate_producer.pywebsocket``.

Handlers written for pywebsocket (``*_wsh.py`` files with
``web_socket_do_extra_handshake`` and ``web_socket_transfer_data``) import
``from mod_pywebsocket import msgutil, common, handshake, stream, util``;
these modules give them the Python 3 form of that API (as pywebsocket3
keeps it), on top of wsgate's producer protocol. The WebSocket protocol
itself is wsgate's: this package never sees a frame."""
