"""The seam between a session and whatever hands out upstreams (a pool).

Owns: the ``Lease`` and ``UpstreamLeaser`` protocols. Must not: implement them
(``pool.UpstreamPool`` does; tests use small doubles).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..dialects.connection import ClientConnection
from ..events import ServerEvent
from ..upstreams.kind import UpstreamKind

__all__ = ["Lease", "Notify", "UpstreamLeaser"]

#: sends one event to the waiting client (in its dialect)
Notify = Callable[[ServerEvent], Awaitable[None]]


class Lease(Protocol):
    """One upstream held for one conversation (see :class:`UpstreamLeaser`)."""

    #: base URL of the leased upstream
    url: str
    #: its kind, when the leaser knows it (a mixed pool); ``None``: the proxy's kind
    kind: UpstreamKind | None
    #: client frames received while the session waited for this lease, oldest first
    held_frames: list[bytes | str]
    #: set when the lease was lost (not renewed in time): another session may get the upstream
    lost: asyncio.Event

    async def release(self, *, failed: bool = False, busy: bool = False) -> None:
        """Give the upstream back; ``failed`` says it broke mid-session (health), ``busy`` that
        it refused the conversation for capacity (see :meth:`UpstreamLeaser.acquire`)."""
        ...


class UpstreamLeaser(Protocol):
    """Hands each session an upstream of its own, queueing it while all are busy."""

    async def acquire(self, session_id: str, client: ClientConnection, notify: Notify, *,
                      again: bool = False) -> Lease:
        """Wait for a free upstream, holding what ``client`` sends meanwhile; tells the client
        its place through ``notify`` (:class:`~asgi_audio_proxy.events.Queued`, and an
        :class:`~asgi_audio_proxy.events.ErrorEvent` if it sends too much while it waits).
        ``again``: the last lease's server refused the conversation for capacity (it was
        released with ``busy=True``); the session waits at the head of the queue.

        Raises:
            SessionLimitExceeded: the queue is full or the wait ran out.
            ClientGone: the client left while it waited.
        """
        ...

    async def would_wait(self) -> bool:
        """Whether a session asking now would have to queue (checked before a handshake is
        accepted when no queue is allowed); a guess: another replica may take the last one."""
        ...

    async def aclose(self) -> None:
        """Stop background work (heartbeats, health checks); called at shutdown."""
        ...
