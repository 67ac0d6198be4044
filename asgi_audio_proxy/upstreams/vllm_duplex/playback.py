"""What the client played of each duplex reply, and what a stop or a played-out reply tells the server.

Owns: :class:`DuplexPlayback`: the replies through the Realtime kind's
:class:`~asgi_audio_proxy.upstreams.realtime.replies.ReplyTracker` (the same states, neutral
events and player-clock estimate of what was heard), and the duplex words for them: a stop is
``response.cancel`` (the client's) or ``barge_in`` (its voice), then ``playback.ack`` with
``truncate`` at what was heard; while a reply plays, ``playback.ack`` as its played position
moves on, and once it has played out, an ack of all of it (the server keeps a reply in its
history only as far as it is acknowledged: ``playback_commit_policy: ack_only``). The server's
own cut (``response.done`` cancelled for ``barge_in``, under ``barge_in_on_speech``) ends the
reply as a voice stop. Time is passed in. Must not: await, send, or read a clock.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ...events import ReplyAudio, UpstreamEvent
from ..realtime.replies import ReplyTracker
from ..realtime.wire import ReplyPart, ResponseDone, cancel_response
from .wire import barge_in, playback_ack

__all__ = ["ACK_STEP_MS", "DuplexPlayback"]

#: a playing reply's position is acknowledged each time it moves on this much
ACK_STEP_MS = 1_000


class DuplexPlayback:
    """One conversation's replies and their playback; feed it reply messages in order."""

    def __init__(self) -> None:
        self.tracker = ReplyTracker()
        self._playing_response: str | None = None  # the response whose audio the player has
        self._acked_ms: dict[str, int] = {}
        self._settled: set[str] = set()  # responses acknowledged for good (played out, or cut)

    @property
    def is_busy(self) -> bool:
        """A response is in progress on the server."""
        return self.tracker.is_busy

    def route(self, message: ReplyPart | ResponseDone, now: float) -> list[UpstreamEvent]:
        """The neutral events one reply message stands for."""
        if (isinstance(message, ResponseDone) and message.status == "cancelled"
                and message.reason == "barge_in"):
            message = replace(message, reason="turn_detected")  # the tracker's word for a voice cut
        events = self.tracker.route(message, now)
        if isinstance(message, ReplyPart) and any(isinstance(e, ReplyAudio) for e in events):
            self._playing_response = message.response_id
        return events

    def cut(self, now: float, *, by_voice: bool) -> tuple[bool, list[str]]:
        """A stop at ``now``: whether a reply was playing, and the client events to send at once."""
        tracker = self.tracker
        response_id = tracker.response_id
        # its state moves; its Realtime messages (cancel, truncate) are not this server's
        was_playing = tracker.cut(now).was_playing
        playout, playing = tracker.playout, self._playing_response
        heard_ms = playout.heard_ms(now) if playout is not None else 0.0
        messages = [barge_in() if by_voice else cancel_response(response_id)] if was_playing else []
        if (playout is not None and playing is not None and playing not in self._settled
                and (was_playing or heard_ms < playout.audio_ms)):
            self._settled.add(playing)
            messages.append(playback_ack(playing, math.floor(heard_ms), truncate=True))
        return was_playing, messages

    def settle(self, now: float) -> list[str]:
        """The conversation ends: ``playback.ack`` of what was played of the last reply, if it
        was not acknowledged for good yet (``truncate`` if the client did not hear all of it)."""
        playout, playing = self.tracker.playout, self._playing_response
        if playout is None or playing is None or playing in self._settled:
            return []
        self._settled.add(playing)
        heard_ms = math.floor(playout.heard_ms(now))
        return [playback_ack(playing, heard_ms, truncate=heard_ms < math.floor(playout.audio_ms))]

    def acks_due(self, now: float) -> list[str]:
        """``playback.ack`` for the reply being played, if its position moved on enough, or for
        good once it has played out and its response is over."""
        playout, playing = self.tracker.playout, self._playing_response
        if playout is None or playing is None or playing in self._settled:
            return []
        heard_ms = math.floor(playout.heard_ms(now))
        if heard_ms >= math.floor(playout.audio_ms) and not (
                self.tracker.is_busy and self.tracker.response_id == playing):
            self._settled.add(playing)
            return [playback_ack(playing, heard_ms, truncate=False)]
        if heard_ms - self._acked_ms.get(playing, 0) >= ACK_STEP_MS:
            self._acked_ms[playing] = heard_ms
            return [playback_ack(playing, heard_ms, truncate=False)]
        return []
