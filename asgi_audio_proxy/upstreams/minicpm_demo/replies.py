"""The gateway's speech and listen events turned into neutral reply events, and what a stop does.

Owns: the state of the model's voice as the proxy sees it, in one transition table: listening,
speaking (a reply is coming and going on to the client), or cut (the proxy stopped the reply: what
is left of it, already on its way, is dropped until the model says it listens again), and the
``ReplyEnded`` each ending means. Must not: await, send, or read a clock.

    state      speech                  speech, end_of_turn         listen                     stop
    LISTENING  SPEAKING: started, ...  LISTENING: started, ..., end  -                        no reply
    SPEAKING   SPEAKING: text, audio   LISTENING: ..., complete      LISTENING: interrupted   CUT
    CUT        (dropped)               LISTENING (dropped)           LISTENING                no reply
"""

from __future__ import annotations

import enum

from ...events import ReplyAudio, ReplyEnded, ReplyStarted, ReplyText, UpstreamEvent
from .wire import OUTPUT_RATE_HZ, Listening, Speech

__all__ = ["ReplyTracker", "VoiceState"]


class VoiceState(enum.Enum):
    LISTENING = "listening"
    SPEAKING = "speaking"
    CUT = "cut"


class ReplyTracker:
    """One conversation's replies; feed it the gateway's speech and listen events in order."""

    def __init__(self) -> None:
        self.state = VoiceState.LISTENING
        #: speech events dropped because their reply was cut
        self.dropped = 0

    @property
    def is_speaking(self) -> bool:
        return self.state is VoiceState.SPEAKING

    def route(self, message: Speech | Listening) -> list[UpstreamEvent]:
        """The neutral events one gateway event stands for (possibly none)."""
        if isinstance(message, Listening):
            was_speaking = self.state is VoiceState.SPEAKING
            self.state = VoiceState.LISTENING
            # the model stopped before the end of its turn (it heard the user, most likely)
            return [ReplyEnded("interrupted")] if was_speaking else []
        if self.state is VoiceState.CUT:
            self.dropped += 1
            if message.end_of_turn:
                self.state = VoiceState.LISTENING
            return []
        out: list[UpstreamEvent] = []
        if self.state is VoiceState.LISTENING:
            self.state = VoiceState.SPEAKING
            out.append(ReplyStarted())
        if message.text:
            out.append(ReplyText(message.text))
        if message.pcm:
            out.append(ReplyAudio(message.pcm, OUTPUT_RATE_HZ))
        if message.end_of_turn:
            self.state = VoiceState.LISTENING
            out.append(ReplyEnded("complete"))
        return out

    def cut(self) -> bool:
        """A stop: drop the rest of the reply being spoken; returns whether one was."""
        if self.state is not VoiceState.SPEAKING:
            return False
        self.state = VoiceState.CUT
        return True
