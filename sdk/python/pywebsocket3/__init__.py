"""pywebsocket3's import path, for handlers written for the maintained fork
of mod_pywebsocket (``from pywebsocket3 import msgutil``, ``common``,
``util``, ``handshake``, ``stream``, ``dispatch``).

Each module here *is* mod_pywebsocket's (the same module objects, so the
same exception classes): a handler written against either name behaves
the same, and one that mixes the two names (a shared helper importing
mod_pywebsocket, a handler importing pywebsocket3) raises classes the
runner recognises. When the real pywebsocket3 is installed ahead of this
one on the path, its exceptions are recognised by name (see
mod_pywebsocket.dispatch)."""
import importlib
import sys

_MODULES = ("common", "dispatch", "handshake", "msgutil", "stream", "util")

for _name in _MODULES:
    _module = importlib.import_module("mod_pywebsocket." + _name)
    sys.modules[__name__ + "." + _name] = _module
    globals()[_name] = _module

__all__ = list(_MODULES)
