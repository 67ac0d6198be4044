"""``ClientConnection``: the client's socket as the session and the pool see it.

Owns: the one protocol (accept, receive a frame, send, close) a session runs over, whatever
carries it; a receive returns ``bytes`` or ``str``, and the peer leaving raises
:class:`~asgi_audio_proxy.errors.ClientGone` with its close code. The adapters over Starlette and
``websockets`` connections are the edge's (:mod:`asgi_audio_proxy.edge.connection`).
Must not: import an I/O library, so everything below the edge can name it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["ClientConnection"]


@runtime_checkable
class ClientConnection(Protocol):
    async def accept(self, subprotocol: str | None = None) -> None: ...
    async def receive(self) -> bytes | str: ...
    async def send(self, message: bytes | str) -> None: ...
    async def close(self, code: int, reason: str = "") -> None: ...
