#!/usr/bin/env python3
"""A chat room as a WSGI application: wsgate's WebSocket-over-HTTP back end
(backend: {http: URL}) POSTs every WebSocket event to it, Pushpin's way,
and it answers with the events to send back. Python's standard library
only; any WSGI server (mod_wsgi, gunicorn) runs `app` the same way.

    chat_wsgi.py [--port 9000] [--publish http://127.0.0.1:8090/publish/]
                 [--publish-token-file FILE]

"/nick NAME" sets the client's name (kept by the gateway as connection
metadata); anything else goes to everybody in the room, through the
gateway's publish endpoint. Publishing is control: the gateway's admin
listener takes it from a client with admin.auth's token (sent as
Authorization: Bearer, read from --publish-token-file), or on a UNIX
socket.
"""
import argparse
import json
import urllib.request

from wsevents import event, parse, serve

PUBLISH = "http://127.0.0.1:8090/publish/"
TOKEN = None


def publish(channel, text):
    item = {"channel": channel, "formats": {"ws-message": {"content": text}}}
    headers = {"Content-Type": "application/json"}
    if TOKEN:
        headers["Authorization"] = "Bearer " + TOKEN
    req = urllib.request.Request(PUBLISH, json.dumps({"items": [item]}).encode(), headers)
    urllib.request.urlopen(req, timeout=5).close()


def app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    nick = environ.get("HTTP_META_NICK", "guest")
    headers = [("Content-Type", "application/websocket-events")]
    out = b""
    for typ, content in parse(body):
        if typ == "OPEN":
            headers.append(("Sec-WebSocket-Extensions", "grip"))
            out += event("OPEN") + event("TEXT", b'c:{"type": "subscribe", "channel": "room"}')
        elif typ == "TEXT":
            text = content.decode()
            if text.startswith("/nick "):
                nick = text[6:].strip()
                headers.append(("Set-Meta-Nick", nick))
                out += event("TEXT", ("m:you are " + nick).encode())
            else:
                publish("room", nick + ": " + text)
        elif typ == "CLOSE":
            out += event("CLOSE", content)
    start_response("200 OK", headers)
    return [out]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--publish", default=PUBLISH)
    ap.add_argument("--publish-token-file")
    args = ap.parse_args()
    PUBLISH = args.publish
    if args.publish_token_file:
        with open(args.publish_token_file) as f:
            TOKEN = f.readline().strip()
    serve(app, args.port)
