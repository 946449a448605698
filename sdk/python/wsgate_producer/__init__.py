"""wsgate-producer: serve WebSocket clients from behind wsgate.

The blocking API is in this package (Server, and the event types ACCEPT,
IO and CLOSE); the asyncio API is in wsgate_producer.aio."""
from .blocking import ACCEPT, CLOSE, IO, Client, Event, Server
from .protocol import BINARY, TEXT, VERSION, MessageTooBig, ProtocolError

__all__ = ["ACCEPT", "BINARY", "CLOSE", "Client", "Event", "IO", "MessageTooBig", "ProtocolError", "Server", "TEXT", "VERSION"]
