"""Writing an encoded websocket frame straight to a connection's socket.

The hub sends one event to every stream of an account. Through Starlette and uvicorn
that is, per connection, a task wake-up, Starlette's ``send_text``, uvicorn's ASGI
``send``, the ``websockets`` protocol object serializing the frame, and a write. When
a connection has nothing waiting, the hub instead writes the frame itself, encoded
once for all connections, to the connection's transport (see :class:`DirectWriter`).

Neither Starlette nor uvicorn offers this: it reaches into uvicorn's ``websockets-sansio``
protocol (what ``postroom serve`` runs). This module is the only place that does.
:func:`direct_writer` returns None, and the stream uses the ordinary ``send_text``, for
any other server or websocket implementation, a uvicorn whose protocol object no longer
looks as expected, and connections that negotiated an extension (permessage-deflate
compresses each connection's frames with its own state, so one encoding cannot serve all).
"""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocket
from websockets.frames import Frame, Opcode
from websockets.protocol import State

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # another server, or a uvicorn without it: always the ordinary path
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

#: What :class:`DirectWriter` reads on uvicorn's protocol object (checked once per connection).
_PROTOCOL_ATTRIBUTES = ("transport", "conn", "writable", "close_sent", "disconnected", "handshake_complete")


def encode_text(text: str) -> bytes:
    """The bytes of one unmasked, unfragmented text frame (a server's frame), by ``websockets``."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class DirectWriter:
    """Writes encoded frames to one uvicorn ``websockets-sansio`` connection's transport."""

    __slots__ = ("_protocol", "_conn", "_transport")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._conn = protocol.conn
        self._transport = protocol.transport

    def write(self, frame: bytes) -> bool:
        """Write ``frame`` now if the connection is open and its transport is not paused.

        False means nothing was written: the caller queues the frame for the connection's
        own task instead (which then waits for the transport, as ``send_text`` does).
        """
        protocol = self._protocol
        if (
            protocol.close_sent
            or protocol.disconnected
            or not protocol.writable.is_set()
            or self._conn.state is not State.OPEN
            or self._transport.is_closing()
        ):
            return False
        self._transport.write(frame)
        return True


def direct_writer(websocket: WebSocket) -> DirectWriter | None:
    """A :class:`DirectWriter` for an accepted stream, or None to use ``send_text``."""
    if WebSocketsSansIOProtocol is None:
        return None
    # uvicorn passes its protocol's bound ``receive`` to the app; Starlette's middleware and
    # ours wrap only ``send``, so the receive callable leads back to the protocol object.
    protocol = getattr(getattr(websocket, "_receive", None), "__self__", None)
    if type(protocol) is not WebSocketsSansIOProtocol:
        return None
    if not all(hasattr(protocol, name) for name in _PROTOCOL_ATTRIBUTES):
        return None
    if not protocol.handshake_complete or getattr(protocol.conn, "extensions", None) != []:
        return None
    return DirectWriter(protocol)
