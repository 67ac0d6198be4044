"""The gateway's speech and listen events turned into neutral reply events, and what a stop does.

Owns: the gateway's model's voice as the proxy sees it, kept as one
:class:`~asgi_audio_proxy.reply_state.ReplyLifecycle` (the one table of a reply's phases), and
the ``ReplyEnded`` each ending means. In this protocol a reply's stream is its speech events:
it closes with ``end_of_turn`` or with the model's next ``response.listen``. Must not: await,
send, or read a clock.

    phase     speech                    speech, end_of_turn          listen              stop
    IDLE      PLAYING: started, pieces  IDLE: started, pieces, end   -                   none plays
    PLAYING   pieces                    IDLE: pieces, complete       IDLE: interrupted   CUT
    CUT       (dropped)                 IDLE (dropped)               IDLE                none plays
"""

from __future__ import annotations

from ...events import ReplyAudio, ReplyEnded, ReplyStarted, ReplyText, UpstreamEvent
from ...reply_state import ReplyLifecycle, ReplyPhase
from .wire import OUTPUT_RATE_HZ, Listening, Speech

__all__ = ["ReplyTracker"]


class ReplyTracker:
    """One conversation's replies; feed it the gateway's speech and listen events in order."""

    def __init__(self) -> None:
        self.reply = ReplyLifecycle("minicpm-demo upstream")
        #: speech events dropped because their reply was cut
        self.dropped = 0

    @property
    def phase(self) -> ReplyPhase:
        return self.reply.phase

    @property
    def is_speaking(self) -> bool:
        return self.reply.is_playing

    def route(self, message: Speech | Listening) -> list[UpstreamEvent]:
        """The neutral events one gateway event stands for (possibly none)."""
        if isinstance(message, Listening):
            out: list[UpstreamEvent] = []
            if self.reply.is_playing:  # the model stopped before the end of its turn (it heard the user)
                self.reply.end()
                out.append(ReplyEnded("interrupted"))
            self.reply.close()
            return out
        if self.reply.is_cut:
            self.reply.more()
            self.dropped += 1
            if message.end_of_turn:
                self.reply.close()
            return []
        out = []
        if not self.reply.is_playing:
            self.reply.start()
            out.append(ReplyStarted())
        self.reply.more()
        if message.text:
            out.append(ReplyText(message.text))
        if message.pcm:
            out.append(ReplyAudio(message.pcm, OUTPUT_RATE_HZ))
        if message.end_of_turn:
            self.reply.end()
            self.reply.close()
            out.append(ReplyEnded("complete"))
        return out

    def cut(self) -> bool:
        """A stop: drop the rest of the reply being spoken; returns whether one was."""
        if not self.reply.is_playing:
            return False
        self.reply.cut()
        return True
