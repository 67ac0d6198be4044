"""Realtime responses turned into neutral reply events, and what a stop sends the server.

Owns: the server's current response as a :class:`~asgi_audio_proxy.reply_state.ReplyLifecycle`
(idle, playing, or cut by the proxy: what is left of it is dropped until its ``response.done``,
which closes it), the ``ReplyEnded`` each ending means, and
the estimate of how much of the reply's audio the client has heard, which a stop turns into
``response.cancel`` plus ``conversation.item.truncate``. Time is passed in. Must not: await,
send, or read a clock.

How much was heard. The proxy hands reply audio to the client as fast as the server makes it,
and the client plays it in real time from the first piece on. So the estimate is a player's
clock: each piece of audio starts playing when it arrives or when the one before it ends,
whichever is later, and what has played by ``now`` is what was heard. When the server runs
ahead of real time (the usual case) that is the real time since the first piece; when it falls
behind, the gaps are not counted; and it is never more than the audio emitted (the server
refuses a truncation past its audio). It errs by the network's delay and the client's own
buffer (tens of milliseconds, on the late side): the model then believes a little more was
heard than was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...events import ReplyAudio, ReplyEnded, ReplyStarted, UpstreamEvent
from ...reply_state import ReplyLifecycle, ReplyPhase
from .wire import ReplyPart, ResponseDone, cancel_response, truncate_item

__all__ = ["Cut", "Playout", "ReplyTracker"]


@dataclass(frozen=True, slots=True)
class Cut:
    """What a stop comes to: whether a reply was playing, and the client events to send at once."""

    was_playing: bool
    messages: tuple[str, ...] = ()


@dataclass(slots=True)
class Playout:
    """One assistant audio item as a real-time player plays it (times in seconds, ``now`` given)."""

    item_id: str | None
    audio_ms: float = 0.0
    ends_at: float = 0.0
    is_truncated: bool = False

    def add(self, ms: float, now: float) -> None:
        """``ms`` more audio handed to the client at ``now``: it plays after what is queued."""
        self.ends_at = max(now, self.ends_at) + ms / 1000
        self.audio_ms += ms

    def heard_ms(self, now: float) -> float:
        """Audio played by ``now``, in milliseconds (never more than the audio emitted)."""
        return min(self.audio_ms, max(0.0, self.audio_ms - (self.ends_at - now) * 1000))


class ReplyTracker:
    """One conversation's responses; feed it reply messages in order, ask it to cut."""

    def __init__(self) -> None:
        self.reply = ReplyLifecycle("realtime upstream")
        self.response_id: str | None = None
        #: the audio item last played (of this response, or of the last one, still in the buffer)
        self.playout: Playout | None = None
        #: reply messages dropped because their response was cut
        self.dropped = 0
        self._cut_response_id: str | None = None

    @property
    def state(self) -> ReplyPhase:
        return self.reply.phase

    @property
    def is_busy(self) -> bool:
        """A response is in progress on the server (playing, or cut and not yet done)."""
        return self.reply.is_open

    def route(self, message: ReplyPart | ResponseDone, now: float) -> list[UpstreamEvent]:
        """The neutral events one reply message stands for (possibly none)."""
        if isinstance(message, ResponseDone):
            return self._done(message)
        event = message.event
        if isinstance(event, ReplyStarted):
            out: list[UpstreamEvent] = []
            if self.reply.is_playing:  # a new response with no done for the last: that one is over
                self.reply.end()
                out.append(ReplyEnded("complete"))
            self._start(message.response_id)
            return [*out, event]
        if self.reply.is_cut or (
                message.response_id is not None and message.response_id == self._cut_response_id):
            self.dropped += 1
            return []
        out = []
        if self.reply.phase is ReplyPhase.IDLE:  # a server that skips response.created
            self._start(message.response_id)
            out.append(ReplyStarted())
        self.reply.more()
        if isinstance(event, ReplyAudio):
            if self.playout is None or self.playout.item_id != message.item_id:
                self.playout = Playout(message.item_id)
            self.playout.add(event.duration_ms, now)
        return [*out, event]

    def cut(self, now: float) -> Cut:
        """A stop at ``now``: cancel the response in progress and truncate its audio where the
        client is. With none in progress, a reply still playing out of the client's buffer is
        truncated all the same (``was_playing`` is then ``False``: there is nothing to cancel)."""
        messages: list[str] = []
        was_playing = self.reply.is_playing
        if was_playing:
            self.reply.cut()
            self._cut_response_id = self.response_id
            messages.append(cancel_response(self.response_id))
        playout = self.playout
        if playout is not None and playout.item_id is not None and not playout.is_truncated:
            heard_ms = playout.heard_ms(now)
            if was_playing or heard_ms < playout.audio_ms:
                playout.is_truncated = True
                messages.append(truncate_item(playout.item_id, math.floor(heard_ms)))
        return Cut(was_playing, tuple(messages))

    def _start(self, response_id: str | None) -> None:
        self.reply.start()
        self.response_id = response_id

    def _done(self, done: ResponseDone) -> list[UpstreamEvent]:
        if self.reply.phase is ReplyPhase.IDLE or (
                done.response_id is not None and self.response_id is not None
                and done.response_id != self.response_id):
            return []  # not the response in progress: an old one's late end
        was_playing = self.reply.is_playing
        if was_playing:
            self.reply.end()
        self.reply.close()
        # a cut reply was ended by the session when it was cut: it must not end twice
        return [done.ending()] if was_playing else []
