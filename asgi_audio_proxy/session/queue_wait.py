"""A wait in the upstream's own queue, while the conversation connects: the client's one queue.

Owns: :class:`UpstreamQueueWait`, the :data:`~asgi_audio_proxy.upstreams.base.QueueReport` a
:class:`~asgi_audio_proxy.upstreams.base.QueueingUpstream` is given for one connect. On the
first place the server gives, the connect's deadline is moved on by ``max_queue_wait_s`` (the
adapter bounds the wait itself by that much) and the client is read from then on, as the pool
reads a client that waits in the proxy's queue: its frames are held for after ``ready`` (up to
the pool's ``DEFAULT_MAX_HELD_BYTES``; past it a frame is dropped, logged, and the client told
once), and its leaving ends the wait (``ClientGone``) so the upstream's place is given up at
once. Each place goes to the client as the proxy's own ``queued`` event, in its dialect. Must
not: know the upstream's wire, or keep reading the client once the connect is over.
"""

from __future__ import annotations

import asyncio
import logging

from starlette import status

from ..config import ProxyConfig
from ..dialects.connection import ClientConnection
from ..errors import SessionLimitExceeded
from ..events import ErrorEvent, Queued, ServerEvent, UpstreamQueued
from ..pool.lease import Notify
from ..pool.pool import DEFAULT_MAX_HELD_BYTES

__all__ = ["UpstreamQueueWait"]


class UpstreamQueueWait:
    """One connect's report of the upstream's queue: call it with each place the upstream gives.

    Args:
        client: the waiting client (read while the upstream queues it).
        notify: sends one event to the client.
        held: where its frames go while it waits (replayed after ``ready``).
        config: the proxy's settings (``max_queue_wait_s``).
        deadline: the connect's deadline, moved on once the upstream queues the conversation.
        tasks: the connect's task group: the reader runs in it, so the client's leaving ends
            the connect.
        log: the session's logger.
    """

    def __init__(self, client: ClientConnection, notify: Notify, held: list[bytes | str],
                 config: ProxyConfig, deadline: asyncio.Timeout, tasks: asyncio.TaskGroup,
                 log: logging.LoggerAdapter[logging.Logger]) -> None:
        self._client = client
        self._notify = notify
        self._held = held
        self._config = config
        self._deadline = deadline
        self._tasks = tasks
        self._log = log
        self._send_lock = asyncio.Lock()  # the places and the reader's refusal share one socket
        self._reader: asyncio.Task[None] | None = None

    async def __call__(self, place: UpstreamQueued) -> None:
        if self._reader is None:
            when = self._deadline.when()
            if when is not None:
                self._deadline.reschedule(when + self._config.max_queue_wait_s)
            self._reader = self._tasks.create_task(self._hold_frames())
            self._log.info("the upstream queued the conversation at position %d (about %.1f s)",
                           place.position, place.eta_s)
        else:
            self._log.debug("upstream queue: position %d, about %.1f s", place.position, place.eta_s)
        await self._send(Queued(place.position, round(place.eta_s, 1)))

    def stop(self) -> None:
        """The connect is over: stop reading the client (what it held stays held)."""
        if self._reader is not None:
            self._reader.cancel()

    async def _send(self, event: ServerEvent) -> None:
        async with self._send_lock:
            await self._notify(event)

    async def _hold_frames(self) -> None:
        held_bytes = sum(len(frame) for frame in self._held)
        refused_bytes = 0
        while True:
            frame = await self._client.receive()  # raises ClientGone: the connect ends
            if held_bytes + len(frame) <= DEFAULT_MAX_HELD_BYTES:
                self._held.append(frame)
                held_bytes += len(frame)
                continue
            refused_bytes += len(frame)
            self._log.warning("refused %d B sent while queued upstream (over %d B held)",
                              refused_bytes, DEFAULT_MAX_HELD_BYTES)
            if refused_bytes == len(frame):  # tell the client once per wait
                await self._send(ErrorEvent(
                    SessionLimitExceeded.kind, f"audio sent while queued is held up to "
                    f"{DEFAULT_MAX_HELD_BYTES} bytes; later frames are dropped until 'ready'",
                    status.WS_1013_TRY_AGAIN_LATER))
