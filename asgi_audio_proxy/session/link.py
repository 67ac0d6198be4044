"""The session's hold on its upstream: the lease on a server and the adapter that speaks to it.

Owns: leasing a server, making its adapter from the lease's kind, opening the conversation under
a deadline (a server that queues it keeps it, and the client waits there: :mod:`.queue_wait`),
going back to the head of the queue (with the frames the lease held) when the server says it is
full, and letting both go at the end. Must not: read from or write to the client
(the leaser's ``notify`` does, while the client waits), or decide how the session ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import httpx

from ..config import ProxyConfig, UpstreamOptions
from ..dialects.connection import ClientConnection
from ..errors import UpstreamBusy, UpstreamTimeout
from ..pool.lease import Lease, Notify, UpstreamLeaser
from ..upstreams.base import QueueingUpstream, UpstreamAdapter
from ..upstreams.kind import UpstreamKind
from .queue_wait import UpstreamQueueWait

__all__ = ["UpstreamLink"]


class UpstreamLink:
    """One session's upstream: ``adapter`` once opened, ``lease`` while held.

    Args:
        session_id: the session's id (the leaser's queue knows it by it).
        client: the client connection (the leaser watches it while it waits).
        notify: how the leaser tells the waiting client its place.
        config: the proxy's settings.
        http_client: the proxy's shared ``httpx.AsyncClient``.
        log: the session's logger.
        leaser: hands out upstreams (a pool); ``None`` with a given ``upstream``.
        kind: the kind leased upstreams are, for leases that name none.
        upstream: an adapter ready to use instead of one made from a kind.
    """

    def __init__(self, session_id: str, client: ClientConnection, notify: Notify, config: ProxyConfig,
                 http_client: httpx.AsyncClient, log: logging.LoggerAdapter[logging.Logger], *,
                 leaser: UpstreamLeaser | None, kind: UpstreamKind | None,
                 upstream: UpstreamAdapter | None) -> None:
        self._session_id = session_id
        self._client = client
        self._notify = notify
        self._config = config
        self._http_client = http_client
        self._log = log
        self._leaser = leaser
        self._kind = kind
        self._given = upstream is not None
        self.adapter = upstream
        self.lease: Lease | None = None
        self._held: list[bytes | str] = []  # frames held while queued upstream, without a lease

    @property
    def held_frames(self) -> list[bytes | str]:
        """Client frames received while the session waited, oldest first (replayed after ``ready``)."""
        return self.lease.held_frames if self.lease is not None else self._held

    async def open(self, options: UpstreamOptions) -> UpstreamAdapter:
        """Lease a server and open the conversation on it; a server that refuses it as full
        sends the session back to the head of the queue (``queued``), with what it held.

        Raises:
            UpstreamTimeout: the conversation did not open within three connect timeouts.
            UpstreamError: the leaser's or the adapter's (``UpstreamBusy`` with a given adapter).
        """
        held: list[bytes | str] = []
        again = False
        while True:
            if self._leaser is not None:
                self.lease = await self._leaser.acquire(self._session_id, self._client, self._notify,
                                                        again=again)
                self.lease.held_frames = held + self.lease.held_frames
            if self.adapter is None:
                assert self.lease is not None  # an upstream, or a leaser and a kind: see the session
                kind = self.lease.kind or self._kind
                assert kind is not None
                self.adapter = kind.factory(self.lease.url, self._config, self._http_client, self._log)
            try:
                await self._connect(self.adapter, options)
                return self.adapter
            except UpstreamBusy as busy:
                if self.lease is None or self._given:
                    raise
                self._log.info("upstream %s is full (%s); waiting again", self.lease.url, busy.message)
                adapter, self.adapter, lease, self.lease = self.adapter, None, self.lease, None
                held, again = lease.held_frames, True
                await adapter.aclose()
                await lease.release(busy=True)

    async def _connect(self, adapter: UpstreamAdapter, options: UpstreamOptions) -> None:
        """``adapter.connect`` under a deadline; while its server queues the conversation, the
        client is told its place, its frames are held, and its leaving ends the wait.

        Raises:
            UpstreamTimeout: the conversation did not open within three connect timeouts (and
                ``max_queue_wait_s`` more, if the server queued it).
            ClientGone: the client left while the server queued it.
        """
        deadline_s = 3 * self._config.connect_timeout_s  # its calls, each under its own
        try:
            async with asyncio.timeout(deadline_s) as deadline:
                try:
                    async with asyncio.TaskGroup() as tasks:
                        wait = UpstreamQueueWait(self._client, self._notify, self.held_frames,
                                                 self._config, deadline, tasks, self._log)
                        if isinstance(adapter, QueueingUpstream):
                            adapter.report_queue(wait)
                        try:
                            await adapter.connect(options)
                        finally:
                            wait.stop()
                except BaseExceptionGroup as group:  # the task group's: one error ended the connect
                    error = group.exceptions[0]
                    raise error from error.__cause__  # as it was raised, without the group around it
        except TimeoutError as exc:
            # ours when the deadline ran out; else one the adapter let out untranslated (a
            # library's own wait): either way a wait on the upstream ran out, never our bug
            raise UpstreamTimeout(f"the upstream did not open the conversation within "
                                  f"{deadline_s:g} s") from exc

    async def close_adapter(self) -> Mapping[str, int]:
        """Close the adapter, if one was made; returns the audio it never accounted for."""
        if self.adapter is None:
            return {}
        await self.adapter.aclose()
        return self.adapter.leftover()

    async def release(self, *, failed: bool) -> None:
        """Give the lease back, if one is held (``failed``: the upstream failed the session)."""
        if self.lease is not None:
            await self.lease.release(failed=failed)
