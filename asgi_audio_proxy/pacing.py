"""Time-based policies as pure arithmetic: real-time pacing of audio, and a rate limit.

Owns: :class:`Pacer` (when may the next 200 ms message go upstream, and how far ahead of real
time is the client; ``UPSTREAM_PROTOCOL.md`` section 5.2: the VAD needs real-time pace) and
:class:`RateLimit` (a token bucket for control messages). Must not: read a clock or await:
callers pass ``now`` (seconds on any monotonic clock).
"""

from __future__ import annotations

from .audio.wav import CLIENT_SAMPLE_RATE_HZ

__all__ = ["CATCH_UP", "Pacer", "RateLimit"]

_BYTES_PER_S = CLIENT_SAMPLE_RATE_HZ * 2
#: how much faster than real time audio that fell behind goes upstream until it is back on
#: schedule: a second behind is made up in four, and a second of speech still spans 0.8 s of
#: the model server's clock (its shortest turn is 0.6 s)
CATCH_UP = 1.25


class Pacer:
    """Keeps audio going upstream no faster than real time, with one ``chunk_duration`` of slack.

    The clock starts at :meth:`start` (the session's lead check starts it at the handshake, so
    audio a client streamed while the upstream was being reached is not taken as running
    ahead), or else at the first audio. Message ``k`` (200 ms each) may go at
    ``start + (k + 1) * 0.2 - burst_s``: a real-time client is never delayed, a faster one is
    slowed to real time.

    Args:
        message_s: duration of one upstream message.
        burst_s: how much audio may go at once (``chunk_duration``).
    """

    def __init__(self, message_s: float, burst_s: float) -> None:
        self._message_s = message_s
        self._burst_s = burst_s
        self._start: float | None = None
        self._received_s = 0.0

    @property
    def started(self) -> bool:
        """The clock runs (:meth:`start` or the first :meth:`received` has happened)."""
        return self._start is not None

    def start(self, now: float) -> None:
        """Start the clock now, unless it has started."""
        if self._start is None:
            self._start = now

    def received(self, nbytes: int, now: float) -> None:
        """Note client audio arriving."""
        if self._start is None:
            self._start = now
        self._received_s += nbytes / _BYTES_PER_S

    def replayed(self, nbytes: int) -> None:
        """Audio sent a second time (the upstream ignored it the first): it goes at once and
        moves the schedule back by its length, so later audio is not held behind it."""
        seconds = nbytes / _BYTES_PER_S
        self._received_s += seconds
        if self._start is not None:
            self._start -= seconds

    def lead_s(self, now: float) -> float:
        """How far the client's audio is ahead of real time (<= 0: not ahead)."""
        if self._start is None:
            return 0.0
        return self._received_s - (now - self._start)

    def send_at(self, index: int, previous_at: float | None = None) -> float:
        """When message ``index`` (0-based) may go upstream, on the caller's clock.

        ``previous_at``, when the message before it went: audio that fell behind the schedule
        (a client that stalled and then sent its backlog at once, or this process busy for a
        moment) catches up at :data:`CATCH_UP` times real time, never as one burst. The model
        server's VAD times speech by its own clock: a second of speech arriving in a tenth of
        one reads as a turn too short to answer (section 5.2), and the turn is lost.
        """
        start = self._start if self._start is not None else 0.0
        at = start + (index + 1) * self._message_s - self._burst_s
        if previous_at is not None:
            at = max(at, previous_at + self._message_s / CATCH_UP)
        return at


class RateLimit:
    """A token bucket: ``rate_per_s`` on average, bursts of ``burst``.

    Args:
        rate_per_s: tokens added per second.
        burst: bucket size (defaults to one second's worth).
    """

    def __init__(self, rate_per_s: float, burst: float | None = None) -> None:
        self._rate = rate_per_s
        self._burst = burst if burst is not None else max(rate_per_s, 1.0)
        self._tokens = self._burst
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        """Take a token if one is there."""
        if self._last is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
