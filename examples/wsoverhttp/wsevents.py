"""Pushpin's WebSocket-over-HTTP event format (application/websocket-events),
shared by the WSGI examples: a body is a run of events, each "TYPE\\r\\n" or
"TYPE <hex size>\\r\\n<content>\\r\\n"."""


def parse(body):
    """The events of a body: (type, content or None) pairs."""
    events = []
    while body:
        line, body = body.split(b"\r\n", 1)
        typ, _, size = line.decode().partition(" ")
        content = None
        if size:
            n = int(size, 16)
            content, body = body[:n], body[n + 2:]
        events.append((typ, content))
    return events


def event(typ, content=None):
    """One event, encoded."""
    if content is None:
        return typ.encode() + b"\r\n"
    return b"%s %x\r\n%s\r\n" % (typ.encode(), len(content), content)
