"""Leases on upstreams and the fair queue in front of them: the ``LeaseStore`` seam, kept in memory.

Owns: the rules every store follows, so that the pool cannot tell one store from another:

- A *ticket* (one waiting session) joins the queue; it is granted an upstream only when its
  place in the queue is smaller than the number of free upstreams, so the order of arrival is
  the order of service, across every replica sharing the store.
- A *grant* (a lease) holds one upstream for one conversation. It carries a *fencing token*
  that grows with every grant, and it and every queued ticket expire ``ttl_s`` after their last
  renewal: a replica that dies loses its leases and its places in the queue within one TTL.
- Every change that may let a waiter in (release, leave, grant, expiry found) bumps a version;
  :meth:`LeaseStore.changed` wakes waiters on it, with no polling.

Must not: do network I/O, know about clients or health (the pool passes the healthy upstreams
in), or read the clock except through the injected one. ``UPSTREAM_PROTOCOL.md`` section 5.1 is
why any of this exists: one conversation per upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "DEFAULT_LEASE_TTL_S",
    "ChangeSignal",
    "Grant",
    "LeaseStore",
    "MemoryLeaseStore",
    "QueueFull",
    "StoreSnapshot",
    "Waiting",
]

#: a lease outlives a replica by this long; heartbeats renew it three times per TTL
DEFAULT_LEASE_TTL_S = 15.0


@dataclass(frozen=True, slots=True)
class Grant:
    """One upstream leased to one ticket; ``token`` is the fencing token (grows per grant)."""

    url: str
    ticket: str
    token: int


@dataclass(frozen=True, slots=True)
class Waiting:
    """The ticket is queued at ``position`` (1 = next).

    ``retry_in_s`` is when something ahead may expire without anyone saying so (a dead
    replica's lease or place): wait for a notification at most this long. ``None``: nothing will.
    """

    position: int
    retry_in_s: float | None = None


@dataclass(frozen=True, slots=True)
class QueueFull:
    """The queue already holds ``length`` tickets, its bound."""

    length: int


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """The queue (oldest first) and the live leases by upstream URL, read at one moment."""

    queue: tuple[str, ...]
    leases: Mapping[str, Grant]


class LeaseStore(Protocol):
    """Where leases and the queue live: this process (:class:`MemoryLeaseStore`) or Redis.

    A store on a service of its own raises
    :class:`~asgi_audio_proxy.errors.LeaseStoreUnavailable` from any call that fails to reach it;
    the pool logs it and goes on where it can (release, heartbeat, health round), and a session
    that is joining or waiting ends with it.
    """

    #: seconds a lease or queued ticket lives after its last renewal
    ttl_s: float

    @property
    def version(self) -> int:
        """Grows with every change this process has heard of; read it before :meth:`poll`."""
        ...

    async def start(self) -> None:
        """Get ready to hear of changes (subscribe); idempotent."""
        ...

    async def join(self, ticket: str, urls: Sequence[str], max_queue: int, *,
                   front: bool = False) -> Grant | Waiting | QueueFull:
        """Take a free upstream at once if nobody waits, else queue ``ticket`` at the back.

        ``front``: a ticket that was already served and must wait again (its server turned out
        to be full) goes back to the head of the queue, past the ``max_queue`` bound.
        """
        ...

    async def poll(self, ticket: str, urls: Sequence[str]) -> Grant | Waiting | None:
        """Grant ``ticket`` an upstream if its turn has come; ``None`` if it is no longer queued."""
        ...

    async def leave(self, ticket: str, urls: Sequence[str]) -> None:
        """Drop ``ticket`` from the queue, and any lease it holds on ``urls``."""
        ...

    async def renew(self, tickets: Collection[str], grants: Collection[Grant]) -> set[str | Grant]:
        """Extend queued tickets and leases by one TTL; returns those already lost."""
        ...

    async def release(self, grant: Grant) -> bool:
        """End a lease; ``False`` if it had already expired or passed to another token."""
        ...

    async def changed(self, seen: int, timeout_s: float | None) -> None:
        """Return once :attr:`version` differs from ``seen``, or after ``timeout_s``."""
        ...

    def wake(self) -> None:
        """Wake this process's waiters (the pool's view of health changed)."""
        ...

    async def snapshot(self, urls: Sequence[str]) -> StoreSnapshot:
        """The queue and the leases on ``urls``."""
        ...

    async def aclose(self) -> None:
        """Stop listening for changes; idempotent."""
        ...


@dataclass
class ChangeSignal:
    """A version counter with an event swapped on every bump (no change can slip past a waiter)."""

    version: int = 0
    _event: asyncio.Event | None = field(default=None, repr=False)

    def bump(self) -> None:
        self.version += 1
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def wait(self, seen: int, timeout_s: float | None) -> None:
        if self.version != seen:
            return
        if self._event is None:
            self._event = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._event.wait()


class MemoryLeaseStore:
    """The default store: one process, no dependencies; the same rules as the Redis store.

    Args:
        ttl_s: lifetime of a lease or queued ticket without renewal.
        clock: monotonic seconds; injected so tests can expire leases without waiting.
    """

    def __init__(self, *, ttl_s: float = DEFAULT_LEASE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < ttl_s < float("inf"):
            raise ValueError(f"invalid ttl_s={ttl_s!r}: expected a positive finite number")
        self.ttl_s = ttl_s
        self._clock = clock
        self._queue: list[str] = []
        self._ticket_expiry: dict[str, float] = {}
        self._leases: dict[str, tuple[Grant, float]] = {}
        self._fence = 0
        self._changes = ChangeSignal()

    @property
    def version(self) -> int:
        return self._changes.version

    async def start(self) -> None:
        return None

    async def join(self, ticket: str, urls: Sequence[str], max_queue: int, *,
                   front: bool = False) -> Grant | Waiting | QueueFull:
        now = self._prune()
        if not self._queue or front:
            free = self._free(urls)
            if free:
                return self._grant(free[0], ticket, now)
        if front:
            self._queue.insert(0, ticket)
        elif len(self._queue) >= max_queue:
            return QueueFull(len(self._queue))
        else:
            self._queue.append(ticket)
        self._ticket_expiry[ticket] = now + self.ttl_s
        place = self._queue.index(ticket)
        if front:
            self._changes.bump()  # everyone behind it moves back one place
        return Waiting(place + 1, self._retry_in(place, urls, now))

    async def poll(self, ticket: str, urls: Sequence[str]) -> Grant | Waiting | None:
        now = self._prune()
        if ticket not in self._queue:
            return None
        place = self._queue.index(ticket)
        free = self._free(urls)
        if place < len(free):
            self._queue.remove(ticket)
            del self._ticket_expiry[ticket]
            return self._grant(free[0], ticket, now)
        return Waiting(place + 1, self._retry_in(place, urls, now))

    async def leave(self, ticket: str, urls: Sequence[str]) -> None:
        changed = ticket in self._ticket_expiry
        if changed:
            self._queue.remove(ticket)
            del self._ticket_expiry[ticket]
        for url in urls:
            held = self._leases.get(url)
            if held is not None and held[0].ticket == ticket:
                del self._leases[url]
                changed = True
        if changed:
            self._changes.bump()

    async def renew(self, tickets: Collection[str], grants: Collection[Grant]) -> set[str | Grant]:
        now = self._prune()
        lost: set[str | Grant] = set()
        for ticket in tickets:
            if ticket in self._ticket_expiry:
                self._ticket_expiry[ticket] = now + self.ttl_s
            else:
                lost.add(ticket)
        for grant in grants:
            if self._leases.get(grant.url, (None,))[0] == grant:
                self._leases[grant.url] = (grant, now + self.ttl_s)
            else:
                lost.add(grant)
        return lost

    async def release(self, grant: Grant) -> bool:
        self._prune()
        if self._leases.get(grant.url, (None,))[0] != grant:
            return False
        del self._leases[grant.url]
        self._changes.bump()
        return True

    async def changed(self, seen: int, timeout_s: float | None) -> None:
        await self._changes.wait(seen, timeout_s)

    def wake(self) -> None:
        self._changes.bump()

    async def snapshot(self, urls: Sequence[str]) -> StoreSnapshot:
        self._prune()
        return StoreSnapshot(tuple(self._queue),
                             {url: self._leases[url][0] for url in urls if url in self._leases})

    async def aclose(self) -> None:
        return None

    def _grant(self, url: str, ticket: str, now: float) -> Grant:
        self._fence += 1
        grant = Grant(url, ticket, self._fence)
        self._leases[url] = (grant, now + self.ttl_s)
        self._changes.bump()  # a grant moves everyone behind up one place
        return grant

    def _free(self, urls: Sequence[str]) -> list[str]:
        return [url for url in urls if url not in self._leases]

    def _retry_in(self, place: int, urls: Sequence[str], now: float) -> float | None:
        expiries = [self._leases[url][1] for url in urls if url in self._leases]
        expiries += [self._ticket_expiry[t] for t in self._queue[:place]]
        return max(0.0, min(expiries) - now) if expiries else None

    def _prune(self) -> float:
        """Forget what has expired (a dead holder); returns the time it used."""
        now = self._clock()
        dead = [t for t in self._queue if self._ticket_expiry[t] <= now]
        gone = [url for url, (_, expiry) in self._leases.items() if expiry <= now]
        for ticket in dead:
            self._queue.remove(ticket)
            del self._ticket_expiry[ticket]
        for url in gone:
            del self._leases[url]
        if dead or gone:
            self._changes.bump()
        return now
