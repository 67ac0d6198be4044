"""What a session did, and the logger that tags every line with its id.

Owns: :class:`SessionStats` (byte accounting whose identity always holds:
``received == sent + skipped + sum(dropped)``) and the session-tagged ``LoggerAdapter``.
Must not: do I/O.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ..events import AudioOutcome

__all__ = ["AudioLedger", "SessionLog", "SessionStats"]


@dataclass
class SessionStats:
    """Totals of one session, handed to ``on_session_end`` and logged when it closes.

    Client audio, counted as PCM16 at the upstream's rate once the dialect has decoded it: every
    byte received ends up in exactly one of ``sent_bytes`` (the model heard it),
    ``skipped_bytes`` (the upstream ignored it, e.g. while it replied) or ``dropped_bytes`` by
    reason (``oversize``, ``too_fast``, ``cleared``, ``session_end``: still buffered when the
    session ended, ``unacknowledged``: in flight when the upstream went away,
    ``upstream_rejected``: refused by the upstream). ``resent_bytes`` of the skipped were sent
    again after a voice barge-in and heard: they count as sent. With MiniCPM-o, ``sent`` and
    ``skipped`` are its ``done`` and ``skip`` acknowledgements (``acks`` counts them).
    """

    session_id: str
    identity: object = None
    received_bytes: int = 0
    sent_bytes: int = 0
    skipped_bytes: int = 0
    dropped_bytes: Counter[str] = field(default_factory=Counter)
    acks: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    reply_audio_bytes: int = 0  # PCM16 at the dialect's rate handed to the client's queue
    resent_bytes: int = 0  # skipped while a reply played, sent again after a voice barge-in
    reply_audio_dropped_bytes: int = 0  # dropped for a slow client, or queued when stopped
    close_code: int | None = None
    duration_s: float = 0.0
    resumes: int = 0  # the client came back on a new connection after a cut
    end_reason: str = ""  # set where the close code alone does not say it

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
                   if self.reply_audio_dropped_bytes else "")
                + (f", {self.resumes} resumes" if self.resumes else "")
                + (f", {self.end_reason}" if self.end_reason else ""))


class AudioLedger:
    """Follows each byte of client audio to the one bucket of :class:`SessionStats` it ends in.

    Bytes are counted as PCM16 at the upstream's rate, once the dialect has decoded them. Between
    arriving and being counted a byte is inside the upstream adapter (buffered, queued, in
    flight); its :class:`~asgi_audio_proxy.events.AudioOutcome` events count it, and
    :meth:`settle` counts what the adapter still held when the session ended.
    """

    def __init__(self, stats: SessionStats) -> None:
        self.stats = stats

    def received(self, nbytes: int) -> None:
        self.stats.received_bytes += nbytes

    def dropped(self, reason: str, nbytes: int) -> None:
        self.stats.dropped_bytes[reason] += nbytes

    def outcome(self, event: AudioOutcome) -> None:
        """``sent`` (the model heard it), ``skipped``, or ``rejected`` (dropped, with the reason)."""
        self.stats.acks[event.detail or "error"] += 1
        if event.outcome == "sent":
            self.stats.sent_bytes += event.nbytes
        elif event.outcome == "resent":  # skipped while a reply played, then heard after a cut
            self.stats.skipped_bytes -= event.nbytes
            self.stats.sent_bytes += event.nbytes
            self.stats.resent_bytes += event.nbytes
        elif event.outcome == "skipped":
            self.stats.skipped_bytes += event.nbytes
        else:
            self.stats.dropped_bytes["upstream_rejected"] += event.nbytes

    def settle(self, leftover: Mapping[str, int]) -> None:
        """The session ended: what never got an outcome is dropped, with its reason."""
        for reason, nbytes in leftover.items():
            self.stats.dropped_bytes[reason] += nbytes


class SessionLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every message with ``[session <id>]``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        session = self.extra["session"] if self.extra else "?"
        return f"[session {session}] {msg}", kwargs
