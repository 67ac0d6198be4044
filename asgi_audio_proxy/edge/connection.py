"""The client side of a session: one small protocol over Starlette and websockets connections.

Owns: the two adapters of :class:`~asgi_audio_proxy.dialects.connection.ClientConnection`
(accept, receive a frame, send, close), so a
session runs the same over an ASGI ``WebSocket`` (accepted or not) and over a ``websockets``
connection, server or client side (a gateway that dials out). A receive returns ``bytes`` or
``str``; the peer leaving raises :class:`~asgi_audio_proxy.errors.ClientGone` with its close code.
Must not: buffer, parse or decide anything.
"""

from __future__ import annotations

import contextlib
from typing import Any

from starlette import status
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.exceptions import ConnectionClosed

# the protocol (below the session) and the error, exported from here too, where the adapters are
from ..dialects.connection import ClientConnection
from ..errors import ClientGone

__all__ = ["ClientConnection", "ClientGone", "StarletteClient", "WebsocketsClient", "as_client",
           "tells_a_close_from_a_cut"]


class StarletteClient:
    """Adapter over a Starlette/FastAPI ``WebSocket``; reads ``receive()`` so close codes survive."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def accept(self, subprotocol: str | None = None) -> None:
        if self.websocket.client_state is WebSocketState.CONNECTING:
            await self.websocket.accept(subprotocol)

    async def receive(self) -> bytes | str:
        if self.websocket.client_state is WebSocketState.DISCONNECTED:
            raise ClientGone(None)
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise ClientGone(message.get("code", status.WS_1005_NO_STATUS_RCVD))
        data: bytes | str | None = message.get("bytes")
        if data is None:
            data = message.get("text") or ""
        return data

    async def send(self, message: bytes | str) -> None:
        if self.websocket.application_state is not WebSocketState.CONNECTED:
            raise ClientGone(None)
        try:
            if isinstance(message, bytes):
                await self.websocket.send_bytes(message)
            else:
                await self.websocket.send_text(message)
        except WebSocketDisconnect as exc:
            raise ClientGone(exc.code) from exc
        except (OSError, RuntimeError) as exc:  # RuntimeError: the server already saw a close
            raise ClientGone(None) from exc

    async def close(self, code: int, reason: str = "") -> None:
        state = self.websocket.application_state
        if state in (WebSocketState.CONNECTING, WebSocketState.CONNECTED):
            # the peer may already be gone; then nothing is left to tell it
            with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
                await self.websocket.close(code, reason[:120])
        if state is WebSocketState.CONNECTED:
            # read what the client sent meanwhile, up to its close reply: hypercorn stops
            # reading the socket while unread frames fill its app queue, so it would never see
            # that reply and the client would wait for a TCP close that never comes. The
            # caller's deadline bounds this.
            with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
                while self.websocket.client_state is WebSocketState.CONNECTED:
                    if (await self.websocket.receive())["type"] == "websocket.disconnect":
                        break


class WebsocketsClient:
    """Adapter over a ``websockets`` connection (server or client side), already open."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def accept(self, subprotocol: str | None = None) -> None:
        return None  # a websockets connection is open once it exists (its subprotocol too)

    async def receive(self) -> bytes | str:
        try:
            data: bytes | str = await self.connection.recv()
        except ConnectionClosed as exc:
            raise ClientGone(exc.rcvd.code if exc.rcvd else None) from exc
        return data

    async def send(self, message: bytes | str) -> None:
        try:
            await self.connection.send(message)
        except ConnectionClosed as exc:
            raise ClientGone(exc.rcvd.code if exc.rcvd else None) from exc

    async def close(self, code: int, reason: str = "") -> None:
        with contextlib.suppress(ConnectionClosed, OSError):  # already closed
            await self.connection.close(code, reason[:120])


def tells_a_close_from_a_cut(websocket: WebSocket) -> bool:
    """Whether the ASGI server under ``websocket`` reports the code of a client's close frame,
    so a cut (1005 or 1006 there) can be told from a close: uvicorn does; hypercorn reports
    every close of the client's as 1006, so there a session is never held for a resume (each
    close would keep its model server for the whole grace). A subclass of one of uvicorn's
    protocols (:class:`~.wsflow.FlowWebSocketProtocol`) is uvicorn's."""
    receive = getattr(websocket, "_receive", None)
    owner = getattr(receive, "__self__", None)
    return any(kind.__module__.startswith("uvicorn.") for kind in type(owner).__mro__)


def as_client(websocket: object) -> ClientConnection:
    """Wrap a Starlette ``WebSocket`` or a ``websockets`` connection; pass a ready one through.

    Raises:
        TypeError: anything else.
    """
    if isinstance(websocket, WebSocket):
        return StarletteClient(websocket)
    if all(hasattr(websocket, name) for name in ("recv", "send", "close")):
        return WebsocketsClient(websocket)
    if isinstance(websocket, ClientConnection):
        return websocket
    raise TypeError(f"expected a Starlette WebSocket or a websockets connection, got {websocket!r}")
