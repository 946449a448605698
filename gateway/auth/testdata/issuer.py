#!/usr/bin/python3
"""An independent token issuer for wsgate's JWT tests: PyJWT signs, and a
standard-library HTTP server publishes the public keys as a JWKS, the way
an identity provider does. Nothing of wsgate's is used.

    issuer.py sign KEYFILE ALG KID CLAIMS_JSON
        prints a token signed with the PEM private key (or, for HS*, the
        secret) in KEYFILE; ALG none makes an unsigned token; KID "" sets
        no kid. Claims "exp"/"nbf"/"iat" given as "+N"/"-N" are now+N s.
    issuer.py confuse PUBKEYFILE KID CLAIMS_JSON
        prints an HS256 token whose HMAC key is the RSA public key's PEM
        text: the algorithm-confusion attack. PyJWT refuses to make one, so
        it is made by hand with hmac.
    issuer.py serve DIR PORTFILE MAXAGE
        serves DIR's public keys (KID.pem) at /jwks.json with
        Cache-Control: max-age=MAXAGE, reading DIR on every request (a key
        written there is rotated in, one removed is rotated out); /fetches
        says how many times the set was fetched. The port is written to
        PORTFILE.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def claims(text):
    c = json.loads(text)
    now = int(time.time())
    for k in ("exp", "nbf", "iat"):
        v = c.get(k)
        if isinstance(v, str) and v[:1] in "+-":
            c[k] = now + int(v)
    return c


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign(keyfile, alg, kid, text):
    headers = {"kid": kid} if kid else None
    if alg == "none":
        return jwt.encode(claims(text), None, algorithm="none", headers=headers)
    with open(keyfile, "rb") as f:
        data = f.read()
    if alg.startswith("HS"):
        key = data.rstrip(b"\r\n")
    else:
        key = serialization.load_pem_private_key(data, password=None)
    return jwt.encode(claims(text), key, algorithm=alg, headers=headers)


def confuse(pubfile, kid, text):
    with open(pubfile, "rb") as f:
        secret = f.read()
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims(text)).encode())
    sig = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)


def jwk(kid, pub):
    if isinstance(pub, rsa.RSAPublicKey):
        k, alg = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(pub)), "RS256"
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        k, alg = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(pub)), "ES256"
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        k, alg = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(pub)), "EdDSA"
    else:
        raise ValueError("unknown key type")
    k.update(kid=kid, use="sig", alg=alg)
    return k


def serve(directory, portfile, maxage):
    fetches = [0]
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/fetches":
                with lock:
                    body = str(fetches[0]).encode()
                ctype = "text/plain"
            elif self.path == "/jwks.json":
                keys = []
                for name in sorted(os.listdir(directory)):
                    if name.endswith(".pem"):
                        with open(os.path.join(directory, name), "rb") as f:
                            pub = serialization.load_pem_public_key(f.read())
                        keys.append(jwk(name[:-4], pub))
                with lock:
                    fetches[0] += 1
                body = json.dumps({"keys": keys}).encode()
                ctype = "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Cache-Control", "max-age=" + maxage)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    srv.serve_forever()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "sign":
        print(sign(*sys.argv[2:6]))
    elif cmd == "confuse":
        print(confuse(*sys.argv[2:5]))
    elif cmd == "serve":
        serve(*sys.argv[2:5])
    else:
        sys.exit("usage: issuer.py sign|confuse|serve ...")
