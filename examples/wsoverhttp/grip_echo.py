#!/usr/bin/env python3
"""An echo over WebSocket-over-HTTP written as GRIP applications are: it
serves only the requests its proxy signed. Pushpin (and wsgate, with a
route's sig_key) signs each request with Grip-Sig, a JWT (HS256, with iss
and exp) under a key the proxy and the application share; the GRIP
libraries' validate_sig checks it with PyJWT, as here, and a request that
fails the check did not come through the proxy.

    grip_echo.py --port 9000 --key-file /etc/wsgate/grip.key [--iss pushpin]

"claims" answers with the token's issuer and its seconds to expiry.
"""
import argparse
import time

import jwt

from wsevents import event, parse, serve

KEY = b""
ISS = None


def validate_sig(token, key):
    """The GRIP libraries' check: a valid HS256 signature, an exp in the
    future, and (when the application names one) the issuer."""
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], issuer=ISS,
                            options={"require": ["exp"]})
    except jwt.PyJWTError:
        return None
    return claims


def app(environ, start_response):
    claims = validate_sig(environ.get("HTTP_GRIP_SIG", ""), KEY)
    if claims is None:
        start_response("403 Forbidden", [("Content-Type", "text/plain")])
        return [b"not signed by the GRIP proxy\n"]
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    out = b""
    for typ, content in parse(body):
        if typ == "OPEN":
            out += event("OPEN")
        elif typ in ("TEXT", "BINARY"):
            if content == b"claims":
                content = b"%s %d" % (claims.get("iss", "").encode(), claims["exp"] - int(time.time()))
            out += event(typ, content)
        elif typ == "CLOSE":
            out += event("CLOSE", content)
    start_response("200 OK", [("Content-Type", "application/websocket-events")])
    return [out]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--iss", default=None, help="the issuer to require (any when not given)")
    args = ap.parse_args()
    with open(args.key_file, "rb") as f:
        KEY = f.read().rstrip(b"\r\n")
    ISS = args.iss
    serve(app, args.port)
