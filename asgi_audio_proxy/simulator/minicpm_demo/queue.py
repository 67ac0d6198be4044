"""The gateway's FIFO queue for its workers, and its wait estimates, as the gateway keeps them.

Owns: :class:`WorkerQueue`: workers (one conversation each), tickets in arrival order, a bound
(``queue_full`` past it), and each waiting ticket's position (1 = next) and ETA, computed the
gateway's way: every busy worker is expected to finish after the expected length of an audio
conversation minus its elapsed time (15 s once that is past), and each waiter in turn takes the
worker that frees first, which then runs one more expected conversation. The expected length is
:data:`EXPECTED_S` until :data:`EMA_MIN_SAMPLES` conversations have ended, then their moving
average (weight :data:`EMA_ALPHA` for the newest). Time is passed in. Must not: do I/O.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["EMA_ALPHA", "EMA_MIN_SAMPLES", "EXPECTED_S", "QueueFull", "Ticket", "WorkerQueue"]

#: the gateway's default expected length of an audio duplex conversation
EXPECTED_S = 120.0
EMA_ALPHA = 0.3
EMA_MIN_SAMPLES = 3
#: what a worker past its expected end is still given
_OVERDUE_S = 15.0


class QueueFull(Exception):
    """The queue holds ``max_queue`` tickets already."""


@dataclass(slots=True)
class Ticket:
    """One waiter: its place (1 = next) and estimated wait, kept up to date by the queue."""

    ticket_id: str
    position: int = 0
    estimated_wait_s: float = 0.0


class WorkerQueue:
    """Workers and the tickets waiting for them.

    Args:
        workers: conversations held at once.
        max_queue: tickets waiting at most.
        expected_s: the expected conversation length before any has ended.
    """

    def __init__(self, workers: int = 1, max_queue: int = 1000, expected_s: float = EXPECTED_S) -> None:
        if workers < 1 or max_queue < 0:
            raise ValueError(f"invalid workers={workers!r} or max_queue={max_queue!r}")
        self._busy_since: list[float | None] = [None] * workers
        self._waiting: OrderedDict[str, Ticket] = OrderedDict()
        self.max_queue = max_queue
        self._expected_s = expected_s
        self._ema: float | None = None
        self._samples = 0

    @property
    def length(self) -> int:
        return len(self._waiting)

    @property
    def idle_workers(self) -> int:
        return self._busy_since.count(None)

    @property
    def expected_s(self) -> float:
        """The conversation length the estimates assume now."""
        if self._ema is not None and self._samples >= EMA_MIN_SAMPLES:
            return self._ema
        return self._expected_s

    def enqueue(self, ticket_id: str, now: float) -> int | Ticket:
        """A worker's index if one is free (it is now busy), else the ticket now waiting.

        Raises:
            QueueFull: no worker is free and the queue is full.
        """
        worker = self._free_worker()
        if worker is not None:
            self._busy_since[worker] = now
            return worker
        if len(self._waiting) >= self.max_queue:
            raise QueueFull(f"Queue full ({self.max_queue} requests)")
        ticket = self._waiting[ticket_id] = Ticket(ticket_id)
        self._estimate(now)
        return ticket

    def ticket(self, ticket_id: str) -> Ticket | None:
        return self._waiting.get(ticket_id)

    def cancel(self, ticket_id: str, now: float) -> list[tuple[str, int]]:
        """The waiter left; returns the tickets that got a worker (none, unless one was free)."""
        self._waiting.pop(ticket_id, None)
        return self._dispatch(now)

    def release(self, worker: int, now: float) -> list[tuple[str, int]]:
        """A conversation on ``worker`` ended; returns ``(ticket, worker)`` for each waiter served."""
        started = self._busy_since[worker]
        self._busy_since[worker] = None
        if started is not None and now > started:
            duration = now - started
            self._ema = duration if self._ema is None else EMA_ALPHA * duration + (1 - EMA_ALPHA) * self._ema
            self._samples += 1
        return self._dispatch(now)

    def _free_worker(self) -> int | None:
        return next((i for i, since in enumerate(self._busy_since) if since is None), None)

    def _dispatch(self, now: float) -> list[tuple[str, int]]:
        served = []
        while self._waiting and (worker := self._free_worker()) is not None:
            ticket_id, _ = self._waiting.popitem(last=False)
            self._busy_since[worker] = now
            served.append((ticket_id, worker))
        self._estimate(now)
        return served

    def _estimate(self, now: float) -> None:
        expected = self.expected_s
        heap = [(expected - (now - since) if now - since < expected else _OVERDUE_S, i)
                for i, since in enumerate(self._busy_since) if since is not None]
        heapq.heapify(heap)
        for position, ticket in enumerate(self._waiting.values(), start=1):
            ticket.position = position
            if not heap:
                ticket.estimated_wait_s = 0.0
                continue
            free_in, worker = heapq.heappop(heap)
            ticket.estimated_wait_s = round(max(0.0, free_in), 1)
            heapq.heappush(heap, (free_in + expected, worker))
