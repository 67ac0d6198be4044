"""What the simulator saw and did, for tests and benchmarks to read and await.

Owns: :class:`SimulatorRecorder`, a plain record of every accepted audio chunk (per uid, in
order), every ack with its reason, every uid that opened ``/completions``, ``/stop`` calls, socket
and SSE-body counts, options received and replies produced, plus :meth:`SimulatorRecorder.wait_for`,
which awaits a condition on the record (woken by an ``asyncio.Event`` set on every change, no
polling). Must not: decide anything about the protocol; the simulator only reports to it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .watched import Watched

__all__ = ["RecordedAck", "RecordedReply", "SimulatorRecorder"]


@dataclass(frozen=True, slots=True)
class RecordedAck:
    """One answer to one stream message (WebSocket frame or ``/stream`` request).

    ``reason`` is the ack's ``finish_reason``; ``error`` is the text of an error answer
    (``{"error": ...}`` or an HTTP error detail), else ``None``.
    """

    uid: str
    reason: str | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RecordedReply:
    """One reply the simulated model produced (not counting the echo)."""

    uid: str
    turn: int
    text: str
    heard_s: float
    voiced_s: float
    chunks: int


@dataclass(slots=True)
class SimulatorRecorder(Watched):
    """Everything the simulator observed, updated in place; read it any time.

    Attributes:
        chunks: accepted audio per uid, in order: the PCM16 of each chunk's WAV (``done`` acks).
        acks: every stream answer, in order.
        completions_uids: uid of each ``/completions`` request, in order.
        stops: ``/stop`` requests plus ``stop_response`` items.
        ws_opened, ws_closed: WebSocket connections accepted and ended.
        sse_opened, sse_closed: ``/completions`` bodies started and finished (any ending).
        options: every ``options`` value ``/init_options`` stored, in order.
        replies: replies produced, in order.
        turn_ends: how many times a turn ended (VAD or no-audio trigger).
        arrivals: multi-conversation mode only: ``time.perf_counter()`` of every WebSocket
            message, per uid.
        errors: WebSocket close reasons and HTTP 500 details the simulator produced.
        fault_at: when its fault mode first acted (the simulator's clock), else ``None``: the
            moment from which a test can time how long the proxy takes to notice.
    """

    chunks: defaultdict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    acks: list[RecordedAck] = field(default_factory=list)
    completions_uids: list[str] = field(default_factory=list)
    stops: int = 0
    ws_opened: int = 0
    ws_closed: int = 0
    sse_opened: int = 0
    sse_closed: int = 0
    options: list[Any] = field(default_factory=list)
    replies: list[RecordedReply] = field(default_factory=list)
    turn_ends: int = 0
    arrivals: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    fault_at: float | None = None

    def fault_struck(self, now: float) -> None:
        """The fault mode acted; the first time counts."""
        if self.fault_at is None:
            self.fault_at = now
        self.changed()
