"""What a session did, and the logger that tags every line with its id.

Owns: :class:`SessionStats` (byte accounting whose identity always holds:
``received == sent + skipped + sum(dropped)``) and the session-tagged ``LoggerAdapter``.
Must not: do I/O.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AudioLedger", "SessionLog", "SessionStats"]


@dataclass
class SessionStats:
    """Totals of one session, handed to ``on_session_end`` and logged when it closes.

    Client audio: every byte received ends up in exactly one of ``sent_bytes`` (acknowledged
    ``done`` by the upstream), ``skipped_bytes`` (acknowledged ``skip``: the upstream was
    replying) or ``dropped_bytes`` by reason (``oversize``, ``session_end``: less than one
    200 ms message left when the session ended, ``unacknowledged``: in flight when the upstream
    went away, ``upstream_rejected``: an error acknowledgement).
    """

    session_id: str
    identity: object = None
    received_bytes: int = 0
    sent_bytes: int = 0
    skipped_bytes: int = 0
    dropped_bytes: Counter[str] = field(default_factory=Counter)
    acks: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    reply_audio_bytes: int = 0  # PCM16 16 kHz handed to the client's queue
    reply_audio_dropped_bytes: int = 0  # dropped for a slow client, or queued when stopped
    close_code: int | None = None
    duration_s: float = 0.0

    @property
    def balanced(self) -> bool:
        """The accounting identity."""
        return self.received_bytes == (self.sent_bytes + self.skipped_bytes
                                       + sum(self.dropped_bytes.values()))

    def summary(self) -> str:
        return (f"code {self.close_code}, {self.duration_s:.1f} s, received {self.received_bytes} B, "
                f"sent {self.sent_bytes} B, skipped {self.skipped_bytes} B, "
                f"dropped {dict(self.dropped_bytes) or 'nothing'}, {self.replies} replies, "
                f"{self.reply_audio_bytes} B reply audio"
                + (f" ({self.reply_audio_dropped_bytes} B dropped)"
                   if self.reply_audio_dropped_bytes else ""))


class AudioLedger:
    """Follows each byte of client audio to the one bucket of :class:`SessionStats` it ends in.

    Between arriving and being counted, a byte is in the chunk buffer (the caller's), queued
    for the upstream, or in flight (sent, not yet acknowledged); :meth:`settle` counts what
    is left in those places when the session ends.
    """

    def __init__(self, stats: SessionStats) -> None:
        self.stats = stats
        self.queued_bytes = 0
        self.in_flight_bytes = 0

    def received(self, nbytes: int) -> None:
        self.stats.received_bytes += nbytes

    def dropped(self, reason: str, nbytes: int) -> None:
        self.stats.dropped_bytes[reason] += nbytes

    def queued(self, nbytes: int) -> None:
        """Released by the chunk buffer, waiting for the upstream sender."""
        self.queued_bytes += nbytes

    def sending(self, nbytes: int) -> None:
        """Handed to the upstream; an acknowledgement will say what became of it."""
        self.queued_bytes -= nbytes
        self.in_flight_bytes += nbytes

    def acknowledged(self, nbytes: int, reason: str | None) -> None:
        """``done`` is sent, ``skip`` skipped, anything else (an error too) rejected."""
        self.in_flight_bytes -= nbytes
        self.stats.acks[reason if reason is not None else "error"] += 1
        if reason == "done":
            self.stats.sent_bytes += nbytes
        elif reason == "skip":
            self.stats.skipped_bytes += nbytes
        else:
            self.stats.dropped_bytes["upstream_rejected"] += nbytes

    def settle(self, buffered_bytes: int) -> None:
        """The session ended: what never got an acknowledgement is dropped, with its reason."""
        if leftover := buffered_bytes + self.queued_bytes:
            self.stats.dropped_bytes["session_end"] += leftover
        if self.in_flight_bytes:
            self.stats.dropped_bytes["unacknowledged"] += self.in_flight_bytes
        self.queued_bytes = self.in_flight_bytes = 0


class SessionLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every message with ``[session <id>]``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        session = self.extra["session"] if self.extra else "?"
        return f"[session {session}] {msg}", kwargs
