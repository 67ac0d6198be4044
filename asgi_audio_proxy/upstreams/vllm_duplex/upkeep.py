"""What a duplex conversation owes its server as time passes, whatever the client does.

Owns: :class:`DuplexUpkeep`: how far the model's input is covered (by the client's audio or by
silence sent for it), and so the silence owed while input must flow (a reply is in progress,
or the trailing silence after the client's last audio runs: the model speaks only as 1 s units
of input arrive; a gap up to ``max_input_gap_s`` is left as it is); ``session.event_ack`` of the
events read, at most every :data:`EVENT_ACK_INTERVAL_S`; and ``session.heartbeat`` every
``heartbeat_interval_s``. Time is passed in. Must not: await, send, or read a clock (the
adapter's tick does).
"""

from __future__ import annotations

from ..realtime.wire import append_audio
from .settings import DuplexSettings
from .wire import INPUT_RATE_HZ, event_ack, heartbeat

__all__ = ["EVENT_ACK_INTERVAL_S", "DuplexUpkeep"]

#: the events read are acknowledged (``session.event_ack``) at most this often
EVENT_ACK_INTERVAL_S = 1.0


class DuplexUpkeep:
    """One conversation's input coverage and its acknowledgement and heartbeat schedule."""

    def __init__(self, settings: DuplexSettings) -> None:
        self._settings = settings
        self._covered_until = 0.0  # the time up to which the model has input (client's or silence)
        self._flow_until = 0.0  # input must keep flowing until then (the trailing silence)
        self._acked_seq = 0
        self._next_event_ack = 0.0
        self._next_heartbeat: float | None = None

    def start(self, now: float) -> None:
        """A socket opens (or a dropped one is resumed) at ``now``: acks and heartbeats from then."""
        heartbeat_s = self._settings.heartbeat_interval_s
        self._next_heartbeat = now + heartbeat_s if heartbeat_s else None
        self._next_event_ack = now

    def heard(self, nbytes: int, now: float) -> None:
        """``nbytes`` of the client's audio (PCM16 at the input rate) went to the server at ``now``."""
        self._covered_until = max(self._covered_until, now) + nbytes / 2 / INPUT_RATE_HZ
        self._flow_until = self._covered_until + self._settings.trailing_silence_s

    def silence_due(self, now: float, *, is_reply_busy: bool) -> str | None:
        """The ``input_audio_buffer.append`` of the silence owed at ``now``, if input must flow
        and the gap since it was last covered is longer than ``max_input_gap_s``."""
        if not (is_reply_busy or now < self._flow_until) or \
                now - self._covered_until <= self._settings.max_input_gap_s:
            return None
        silence = append_audio(bytes(2 * round((now - self._covered_until) * INPUT_RATE_HZ)))
        self._covered_until = now
        return silence

    def urgent_due(self, now: float, last_seq: int) -> list[str]:
        """``session.event_ack`` (``last_seq`` the last event read) and ``session.heartbeat``,
        if due at ``now``."""
        due = []
        if last_seq > self._acked_seq and now >= self._next_event_ack:
            self._acked_seq, self._next_event_ack = last_seq, now + EVENT_ACK_INTERVAL_S
            due.append(event_ack(last_seq))
        heartbeat_s = self._settings.heartbeat_interval_s
        if self._next_heartbeat is not None and heartbeat_s and now >= self._next_heartbeat:
            self._next_heartbeat = now + heartbeat_s
            due.append(heartbeat())
        return due
