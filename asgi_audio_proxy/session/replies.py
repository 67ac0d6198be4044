"""The session's reply path: the upstream's reply events on their way to the client, and stops.

Owns: the reply as the session sees it (one :class:`~asgi_audio_proxy.reply_state.ReplyLifecycle`,
moved by what the adapter emits and by the stops it confirms), the reply's one resampling to
the dialect's rate, the reply counts in the stats, and what a stop does on the client's side
(queued audio dropped, the resampler's tail forgotten, the ending told). Must not: await, send,
or decide when a reply is stopped (the client, the app or the voice detector do).
"""

from __future__ import annotations

import logging
from typing import Protocol

from ..dialects.base import ClientDialect
from ..events import ReplyAudio, ReplyEnded, ReplyStarted, ReplyText, StopReason
from ..reply_state import ReplyInput, ReplyLifecycle, ReplyOrderError
from .channel import ClientChannel
from .rates import RateBridge
from .stats import SessionStats

__all__ = ["ReplyPath", "Stoppable"]

#: an upstream's reply events, as the reply path takes them (audio outcomes go to the ledger)
ReplyEvent = ReplyStarted | ReplyText | ReplyAudio | ReplyEnded


class Stoppable(Protocol):
    """What a stop needs of the upstream adapter (its ``stop``)."""

    def stop(self, resend_from_ms: float | None = None) -> bool: ...


class ReplyPath:
    """One session's replies, from its upstream adapter to its client channel.

    Args:
        to_client: the way to the client.
        dialect: the client's wire format (its ``output_rate_hz`` may change mid-session).
        rates: the session's resamplers (the reply's is used here).
        stats: where replies and reply audio are counted.
        log: the session's logger.
    """

    def __init__(self, to_client: ClientChannel, dialect: ClientDialect, rates: RateBridge,
                 stats: SessionStats, log: logging.LoggerAdapter[logging.Logger]) -> None:
        self._to_client = to_client
        self._dialect = dialect
        self._stats = stats
        self._log = log
        self._rates = rates
        self.reply = ReplyLifecycle("session")

    def on_upstream(self, event: ReplyEvent) -> None:
        """A reply event from the adapter: resampled if audio, counted, queued for the client."""
        if isinstance(event, ReplyAudio):
            self._emit_audio(self._rates.reply(event, self._dialect.output_rate_hz))
            return
        if isinstance(event, ReplyStarted):
            self._move(ReplyInput.START)
        elif isinstance(event, ReplyEnded):
            self._emit_audio(self._rates.end_reply())
            self._move(ReplyInput.END)
            self._stats.replies += 1
        self._to_client.emit(event)

    def stop(self, upstream: Stoppable, reason: StopReason,
             resend_from_ms: float | None = None) -> None:
        """Cut the reply being played, at once; ``resend_from_ms`` as for ``UpstreamAdapter.stop``."""
        ending = ReplyEnded("stopped", stopped_by=reason)
        if not upstream.stop(resend_from_ms):
            # the model has finished it, but a paced client may still be playing its queued audio
            if self._to_client.cut_queued_reply(ending):
                self._log.debug("queued reply stopped (%s)", reason)
            return  # else nothing plays: nothing to stop, and a /stop now would kill the next one
        self._to_client.drop_audio()
        self._rates.drop_reply()
        if not self.reply.is_playing:
            # the upstream had begun a reply it had not announced yet (MiniCPM-o: its echo had
            # come, its first piece not): it was playing all the same
            self.reply.start()
        self.reply.cut()
        self._stats.replies += 1
        self._log.debug("reply stopped (%s)", reason)
        self._to_client.emit(ending)

    def close(self) -> None:
        """The session is ending: a reply still playing is cut by the end, and still counts as
        a reply the client had."""
        if self.reply.is_playing:
            self.reply.cut()
            self._stats.replies += 1

    def _move(self, event: ReplyInput) -> None:
        try:
            self.reply.apply(event)
        except ReplyOrderError as exc:  # a third-party adapter's slip: said, and the reply goes on
            self._log.warning("upstream adapter out of order: %s", exc)

    def _emit_audio(self, pieces: list[ReplyAudio]) -> None:
        for audio in pieces:
            self._stats.reply_audio_bytes += len(audio.pcm)
            self._to_client.emit(audio)
