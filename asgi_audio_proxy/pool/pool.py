"""``UpstreamPool``: each session gets an upstream of its own, through a fair queue, with health checks.

Owns: the :class:`~asgi_audio_proxy.pool.lease.UpstreamLeaser` the session calls after accepting
its client: join the queue (``queued`` events on joining and on every change of place), keep
reading the client while it waits, give up at the wait limit, and hand back a
:class:`PoolLease`; plus two background tasks per pool, the lease heartbeat and the health
probes (``health.py``, each server's kind says how). Must not: touch the upstream's conversation
(the session does), import a concrete upstream kind, or move a conversation to another upstream
midway: a failed upstream ends its session with an error.

**Slots.** A server holds as many conversations at once as its kind's ``slots`` (the MiniCPM-o
web-demo server: one, since a second uid silently takes the first over, ``UPSTREAM_PROTOCOL.md``
sections 1, 5.1 and 8). Each slot is one key in the lease store, so a slot is never leased twice,
by this process or any other sharing the store: server ``U``'s first slot is ``U`` itself, the
others ``U#2``, ``U#3``... Free slots are filled across servers first (every server's first
slot, then every second one), so load spreads.

**A full server.** A server may refuse a conversation for capacity (``UpstreamBusy``: someone
else uses it too, or it holds fewer than it was said to). The session then gives its slot back
with ``busy=True`` and calls :meth:`UpstreamPool.acquire` with ``again=True``: it goes back to
the head of the queue (a ``queued`` event), and that slot rests until another conversation on the
same server ends, or one health interval passes.

Audio sent while queued is **held**, oldest first, up to ``max_held_bytes`` (text frames
count too) and replayed after ``ready``. A frame past the bound is **refused**: it is dropped,
the client gets one ``error`` event (``limit_exceeded``, code 1013) per wait, the session goes
on waiting, and the dropped bytes are logged at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from starlette import status

from ..dialects.connection import ClientConnection
from ..errors import AudioProxyError, SessionLimitExceeded, UpstreamUnavailable
from ..events import ErrorEvent, Queued, ServerEvent
from ..metrics import ProxyMetrics
from ..tasks import stop_task
from ..upstreams.kind import UpstreamKind, http_probe, new_http_client
from .health import HealthSource, UpstreamHealth
from .lease import Notify
from .store import Grant, LeaseStore, MemoryLeaseStore, QueueFull, Waiting

__all__ = ["PoolLease", "UpstreamPool", "UpstreamServer", "slot_keys"]

logger = logging.getLogger("asgi_audio_proxy.pool")

#: waiting clients per deployment; more only lengthen waits nobody sits through
DEFAULT_MAX_QUEUE = 32
#: five minutes in a queue is already past most callers' patience
DEFAULT_MAX_WAIT_S = 300.0
#: an upstream that died is noticed within this long (a session on it notices at once)
DEFAULT_HEALTH_INTERVAL_S = 5.0
#: /health answers in milliseconds unless the model is blocking the server's event loop
DEFAULT_HEALTH_TIMEOUT_S = 2.0
#: two seconds of 16 kHz PCM16: words spoken before ``ready`` are kept, a monologue is not
DEFAULT_MAX_HELD_BYTES = 64 * 1024
#: the first ``eta_s`` guesses sessions last this long; then the mean of finished ones is used
DEFAULT_EXPECTED_SESSION_S = 120.0
_MEAN_WEIGHT = 0.2  # of the newest session in the running mean
_Send = Callable[[ServerEvent], Awaitable[None]]
#: a pool given bare URLs and no kind: one slot each, ``GET /health``, never probed while leased
_PLAIN = (1, http_probe("/health"), False)


@dataclass(frozen=True)
class UpstreamServer:
    """One model server of a pool.

    Attributes:
        url: its address (``http://gpu-1:32550``, ``ws://host:8000/v1/realtime``...).
        kind: what it is; ``None``: the pool's ``kind`` (and the proxy's, for the adapter).
        slots: conversations it holds at once; ``None``: its kind's ``slots``.
    """

    url: str
    kind: UpstreamKind | None = None
    slots: int | None = None


def slot_keys(url: str, slots: int) -> list[str]:
    """The lease-store keys of a server's slots: ``url`` itself, then ``url#2`` ... ``url#N``."""
    return [url] + [f"{url}#{n}" for n in range(2, slots + 1)]


class PoolLease:
    """One upstream held by one session (the session's :class:`~asgi_audio_proxy.session.session.Lease`).

    Attributes:
        url: the upstream's base URL.
        slot: the slot held on it (its lease-store key; ``url`` itself for a server's first).
        kind: the server's kind, if the pool was told one (else the proxy's applies).
        held_frames: client frames received while queued, oldest first.
        token: the fencing token; a later lease on the same upstream has a larger one.
        lost: set if the heartbeat found the lease gone (held past its TTL unrenewed).
    """

    def __init__(self, pool: UpstreamPool, grant: Grant, held_frames: list[bytes | str]) -> None:
        self.slot = grant.url
        self.url = pool.server_of(grant.url)
        self.kind = pool.kind_of(self.url)
        self.held_frames = held_frames
        self.token = grant.token
        self.grant = grant
        self.lost = asyncio.Event()
        self.started_at = time.monotonic()
        self._pool = pool
        self._released = False

    async def release(self, *, failed: bool = False, busy: bool = False) -> None:
        """Give the upstream back; ``failed`` takes it out of the pool until it is healthy,
        ``busy`` (it refused for capacity) rests this slot (see the module docstring)."""
        if not self._released:
            self._released = True
            await self._pool.give_back(self, failed=failed, busy=busy)


class UpstreamPool:
    """Leases upstreams to sessions, one conversation each, queueing sessions in arrival order.

    Args:
        urls: the model servers: base URLs (``http://gpu1:32550``) of the pool's ``kind``, or
            :class:`UpstreamServer` entries (a pool may mix kinds and slot counts).
        kind: the kind of servers given as bare URLs: its slots, probe and URL schemes. Without
            one, each holds one conversation and is probed with ``GET /health`` while free.
        store: where leases and the queue live: :class:`~asgi_audio_proxy.pool.store.MemoryLeaseStore`
            (default; this process only) or a ``RedisLeaseStore`` shared by every replica.
            The pool closes it in :meth:`aclose`.
        http_client: for health checks; one is made (and closed) otherwise.
        metrics: where queue, lease and health figures go.
        max_queue: sessions waiting at most; one more is refused with close 1013.
        max_wait_s: longest wait in the queue; then an ``error`` event and close 1013.
        health_interval_s: seconds between two rounds of ``GET /health``.
        health_timeout_s: a check slower than this fails.
        max_held_bytes: frames held per queued client (see the module docstring).
        expected_session_s: the session length ``eta_s`` assumes until some have finished.

    Raises:
        ValueError: no URL, a repeated or malformed one, or a limit out of range (names it).
    """

    def __init__(self, urls: Sequence[str | UpstreamServer], *, kind: UpstreamKind | None = None,
                 store: LeaseStore | None = None,
                 http_client: httpx.AsyncClient | None = None, metrics: ProxyMetrics | None = None,
                 max_queue: int = DEFAULT_MAX_QUEUE, max_wait_s: float = DEFAULT_MAX_WAIT_S,
                 health_interval_s: float = DEFAULT_HEALTH_INTERVAL_S,
                 health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S,
                 max_held_bytes: int = DEFAULT_MAX_HELD_BYTES,
                 expected_session_s: float = DEFAULT_EXPECTED_SESSION_S) -> None:
        servers = [entry if isinstance(entry, UpstreamServer) else UpstreamServer(entry)
                   for entry in urls]
        self.kind = kind
        self._kinds: dict[str, UpstreamKind | None] = {}
        self._slots: dict[str, int] = {}
        probes = {}
        self._probe_leased: set[str] = set()
        for server in servers:
            server_kind = server.kind or kind
            url = _checked_url(server.url, server_kind)
            if url in self._kinds:
                raise ValueError(f"invalid urls={[s.url for s in servers]!r}: expected distinct URLs")
            slots, probe, probe_leased = _PLAIN if server_kind is None else (
                server_kind.slots, server_kind.probe, server_kind.probe_while_leased)
            slots = slots if server.slots is None else server.slots
            if type(slots) is not int or slots < 1:
                raise ValueError(f"invalid slots={slots!r} for {url}: expected a whole number >= 1")
            self._kinds[url], self._slots[url], probes[url] = server.kind, slots, probe
            if probe_leased:
                self._probe_leased.add(url)
        self.urls = tuple(self._kinds)
        if not self.urls:
            raise ValueError(f"invalid urls={list(urls)!r}: expected one or more URLs")
        #: every slot's key, in the order free ones are leased: each server's first, then seconds...
        keys = {url: slot_keys(url, self._slots[url]) for url in self.urls}  # once: --slots 10000 is fine
        self.slots = tuple(keys[url][n] for n in range(max(self._slots.values()))
                           for url in self.urls if n < self._slots[url])
        self._server = {key: url for url in self.urls for key in keys[url]}
        self._resting: dict[str, float] = {}  # slot -> until when (a server refused it as full)
        for name, value in (("max_wait_s", max_wait_s), ("health_interval_s", health_interval_s),
                            ("health_timeout_s", health_timeout_s),
                            ("expected_session_s", expected_session_s)):
            if not 0 < value < float("inf"):
                raise ValueError(f"invalid {name}={value!r}: expected a positive finite number")
        if max_queue < 0 or max_held_bytes < 0:
            raise ValueError(f"invalid max_queue={max_queue!r} or max_held_bytes={max_held_bytes!r}: "
                             "expected a number >= 0")
        self.store: LeaseStore = store or MemoryLeaseStore()
        self.metrics = metrics
        self.max_queue, self.max_wait_s, self.max_held_bytes = max_queue, max_wait_s, max_held_bytes
        self.health_interval_s, self.health_timeout_s = health_interval_s, health_timeout_s
        self.replica = uuid.uuid4().hex[:8]
        self._http_client = http_client or new_http_client()
        self._owns_client = http_client is None
        #: which upstreams may be leased; ``await pool.health.wait(url)`` for readiness
        self.health = UpstreamHealth(self.urls, self._http_client, timeout_s=health_timeout_s,
                                     on_change=self._health_changed, probes=probes)
        self._mean_session_s = expected_session_s
        self._waiting: set[str] = set()
        self._leases: dict[str, PoolLease] = {}
        self._background: list[asyncio.Task[None]] = []
        self._start_lock = asyncio.Lock()
        for url in self.urls:
            if metrics:
                metrics.healthy.labels(upstream=url).set(1)

    def server_of(self, slot: str) -> str:
        """The server URL a slot key belongs to."""
        return self._server[slot]

    def kind_of(self, url: str) -> UpstreamKind | None:
        """The kind a server was given with (``None``: the proxy's)."""
        return self._kinds[url]

    def capacity(self, url: str) -> int:
        """How many conversations ``url`` holds at once."""
        return self._slots[url]

    def candidates(self) -> list[str]:
        """The slots that may be leased now: on healthy servers, not resting, in leasing order."""
        now = time.monotonic()
        healthy = self.health.healthy
        return [key for key in self.slots
                if self._server[key] in healthy and self._resting.get(key, 0.0) <= now]

    @property
    def waiting(self) -> int:
        """Sessions of this replica in the queue now."""
        return len(self._waiting)

    @property
    def leased(self) -> frozenset[str]:
        """Upstreams leased by this replica now."""
        return frozenset(lease.url for lease in self._leases.values())

    @property
    def total_slots(self) -> int:
        """Conversations every server of the pool holds at once, added up."""
        return len(self.slots)

    async def start(self) -> None:
        """Connect the store and start the heartbeat and health checks; idempotent."""
        async with self._start_lock:
            if not self._background:
                await self.store.start()
                self._background = [
                    asyncio.create_task(self._heartbeat_forever(), name="pool-heartbeat"),
                    asyncio.create_task(self.health.run(self.health_interval_s, self._held_anywhere),
                                        name="pool-health")]

    async def aclose(self) -> None:
        """Stop the background tasks and close the store (and the HTTP client if ours)."""
        background, self._background = self._background, []
        for task in background:
            try:
                await stop_task(task)
            except Exception:  # a bug in a loop that handles its own errors: said, and closed on
                logger.exception("the pool's %s task had failed", task.get_name())
        await self.store.aclose()
        if self._owns_client:
            await self._http_client.aclose()

    async def would_wait(self) -> bool:
        """Whether a session asking now would queue: no healthy upstream is free."""
        await self.start()
        snapshot = await self.store.snapshot(self.slots)
        return bool(snapshot.queue) or not set(self.candidates()) - set(snapshot.leases)

    async def acquire(self, session_id: str, client: ClientConnection, notify: Notify, *,
                      again: bool = False) -> PoolLease:
        """Wait for a free upstream, in arrival order, telling the client its place.

        ``again``: the session was served, but its server refused it as full; it waits at the
        head of the queue (see the module docstring).

        Raises:
            SessionLimitExceeded: the queue is full, or ``max_wait_s`` passed (close 1013).
            UpstreamUnavailable: no upstream is healthy (close 1011).
            ClientGone: the client left while it waited; its place is freed at once.
        """
        await self.start()
        if not self.health.healthy:
            raise UpstreamUnavailable(f"none of the {len(self.urls)} upstreams is healthy")
        ticket = f"{self.replica}-{session_id}"
        held: list[bytes | str] = []
        outcome = await self.store.join(ticket, self.candidates(), self.max_queue, front=again)
        if isinstance(outcome, QueueFull):
            raise SessionLimitExceeded(f"all upstreams are busy and the queue is full "
                                       f"({outcome.length} waiting); try again later")
        if isinstance(outcome, Waiting):
            if again:
                logger.info("[session %s] the server was full; waiting again at the head of the queue",
                            session_id)
            outcome = await self._queue(ticket, session_id, client, notify, held, outcome)
        lease = self._leases[ticket] = PoolLease(self, outcome, held)
        if self.metrics:
            self.metrics.leases.labels(upstream=lease.url).inc()
        logger.info("[session %s] leased %s (token %d)", session_id, lease.slot, lease.token)
        return lease

    async def _queue(self, ticket: str, session_id: str, client: ClientConnection, notify: Notify,
                     held: list[bytes | str], waiting: Waiting) -> Grant:
        joined_at = time.monotonic()
        self._waiting.add(ticket)
        if self.metrics:
            self.metrics.queue_length.inc()
        grant: Grant | None = None
        try:
            grant = await self._wait_turn(ticket, session_id, client, notify, held, waiting)
            return grant
        finally:
            self._waiting.discard(ticket)
            if grant is None:  # gone, timed out or cancelled: free the place (and a late grant)
                await self.store.leave(ticket, self.slots)
            waited = time.monotonic() - joined_at
            logger.info("[session %s] left the queue after %.1f s: %s", session_id, waited,
                        "served" if grant else "not served")
            if self.metrics:
                self.metrics.queue_length.dec()
                self.metrics.queue_wait.labels(outcome="served" if grant else "gave_up").observe(waited)

    async def _wait_turn(self, ticket: str, session_id: str, client: ClientConnection,
                         notify: Notify, held: list[bytes | str], waiting: Waiting) -> Grant:
        send_lock = asyncio.Lock()

        async def send(event: ServerEvent) -> None:
            async with send_lock:  # the queue updates and the holder's refusal share one socket
                await notify(event)

        deadline = time.monotonic() + self.max_wait_s
        reader = asyncio.create_task(self._hold_frames(session_id, client, held, send))
        try:
            outcome: Grant | Waiting | None = waiting
            seen, position = self.store.version, 0
            while isinstance(outcome, Waiting):
                if outcome.position != position:
                    position = outcome.position
                    await send(self._queued_event(position))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SessionLimitExceeded(f"no upstream became free within {self.max_wait_s:g} s; "
                                               "try again later")
                retry_in_s = _soonest(outcome.retry_in_s, self._rest_ends_in())
                wait = asyncio.create_task(self.store.changed(
                    seen, remaining if retry_in_s is None else min(remaining, retry_in_s)))
                try:
                    await asyncio.wait((reader, wait), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    wait.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await wait
                if reader.done():
                    reader.result()  # raises ClientGone (or a send failure)
                seen = self.store.version
                outcome = await self.store.poll(ticket, self.candidates())
            if outcome is None:
                raise SessionLimitExceeded("the place in the queue expired (lease store unreachable?)")
            return outcome
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader  # its ClientGone, if any, was raised above

    async def _hold_frames(self, session_id: str, client: ClientConnection,
                           held: list[bytes | str], send: _Send) -> None:
        held_bytes = refused_bytes = 0
        while True:
            frame = await client.receive()
            if held_bytes + len(frame) <= self.max_held_bytes:
                held.append(frame)
                held_bytes += len(frame)
                continue
            refused_bytes += len(frame)
            logger.warning("[session %s] refused %d B sent while queued (over %d B held)",
                           session_id, refused_bytes, self.max_held_bytes)
            if refused_bytes == len(frame):  # tell the client once per wait
                await send(ErrorEvent(
                    SessionLimitExceeded.kind, f"audio sent while queued is held up to "
                    f"{self.max_held_bytes} bytes; later frames are dropped until 'ready'",
                    status.WS_1013_TRY_AGAIN_LATER))

    def _queued_event(self, position: int) -> Queued:
        healthy = self.health.healthy
        slots = sum(self._slots[url] for url in healthy)
        eta_s = position * self._mean_session_s / max(1, slots)
        return Queued(position, round(eta_s, 1))

    async def give_back(self, lease: PoolLease, *, failed: bool, busy: bool = False) -> None:
        """Take a lease back (called by :meth:`PoolLease.release`); ``failed`` marks its upstream
        down, ``busy`` rests its slot."""
        self._leases.pop(lease.grant.ticket, None)
        if busy:
            self._resting[lease.slot] = time.monotonic() + self.health_interval_s
            logger.info("%s refused a conversation as full: slot %s rests", lease.url, lease.slot)
        else:  # a conversation ended here: the server has room again
            for key in slot_keys(lease.url, self._slots[lease.url]):
                self._resting.pop(key, None)
        held_s = time.monotonic() - lease.started_at
        self._mean_session_s += _MEAN_WEIGHT * (held_s - self._mean_session_s)
        if self.metrics:
            self.metrics.leases.labels(upstream=lease.url).dec()
        if failed:  # out before the release wakes anyone, so no waiter takes it
            self.health.mark(lease.url, False, "session", "its session failed")
        try:
            await self.store.release(lease.grant)
        except AudioProxyError as exc:
            logger.warning("could not release %s (%s); it returns after the lease TTL", lease.url, exc)

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.store.ttl_s / 3)  # a production timer: three beats per TTL
            leases = {lease.grant: lease for lease in self._leases.values()}
            try:
                lost = await self.store.renew(set(self._waiting), set(leases))
            except AudioProxyError as exc:
                logger.warning("lease heartbeat failed: %s", exc)
                continue
            for item in lost:
                if isinstance(item, Grant) and item in leases:
                    logger.warning("lease on %s (token %d) was lost", item.url, item.token)
                    leases[item].lost.set()

    async def _held_anywhere(self) -> set[str]:
        """Servers not to probe now: those holding a conversation whose kind cannot be probed then."""
        held = {self._server[key] for key in (await self.store.snapshot(self.slots)).leases}
        return held - self._probe_leased

    def _rest_ends_in(self) -> float | None:
        now = time.monotonic()
        ends = [until - now for until in self._resting.values() if until > now]
        return min(ends) if ends else None

    def _health_changed(self, url: str, healthy: bool, source: HealthSource) -> None:
        if self.metrics:
            self.metrics.healthy.labels(upstream=url).set(1 if healthy else 0)
            if not healthy:
                self.metrics.upstream_errors.labels(upstream=url, source=source).inc()
        self.store.wake()  # waiters re-count the free upstreams


def _checked_url(url: str, kind: UpstreamKind | None) -> str:
    if kind is not None:
        return kind.check_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid url={url!r}: expected an http:// or https:// URL with a host")
    return url.rstrip("/")


def _soonest(*delays: float | None) -> float | None:
    known = [delay for delay in delays if delay is not None]
    return min(known) if known else None
