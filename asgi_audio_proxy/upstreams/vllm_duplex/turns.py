"""The user's turns as the duplex model takes them, told as the neutral speech events.

Owns: :class:`ModelTurns`: where the user's turn being spoken began and whether its start was
told, in milliseconds of the client's audio (the silence the adapter adds is not the client's);
the start told when the server hears speech (``input_audio_buffer.speech_started``, or an
``overlap.decision`` that keeps speech over a reply: ``listen`` or ``barge_in``); the end when
the model starts to speak (``response.created`` or ``response.speak``, once per response),
after the start if none was told, so each turn's ``SpeechStopped`` follows its own
``SpeechStarted``. The server's ``speech_stopped`` only marks where the speech ended: the model,
not a pause, ends the turn. A turn with no client audio in it (the model speaks first) is told
nothing. Must not: do I/O, read a clock, or decide what the server is sent.
"""

from __future__ import annotations

import math

from ...events import ReplyStarted, SpeechStarted, SpeechStopped, pcm_duration_ms
from ..realtime.wire import ReplyPart, SpeechActivity
from .wire import Decision, DuplexMessage, Overlap

__all__ = ["ModelTurns", "TurnEvent"]

TurnEvent = SpeechStarted | SpeechStopped


class ModelTurns:
    """One conversation's user turns; feed it the client's audio and the server's turn events.

    Args:
        input_rate_hz: the rate of the PCM16 :meth:`heard` counts.
    """

    def __init__(self, input_rate_hz: int) -> None:
        self._rate_hz = input_rate_hz
        self._heard_ms = 0.0  # client audio so far
        self._start_ms = 0.0  # where the turn being spoken began
        self._stop_ms: float | None = None  # where the server heard its speech end, if it said
        self._is_started = False  # its SpeechStarted was told
        self._interrupted_ms: float | None = None  # where the client's voice cut the last reply
        self._answered: str | None = None  # the response that last ended a turn

    @property
    def heard_ms(self) -> float:
        """Milliseconds of client audio so far."""
        return self._heard_ms

    def heard(self, nbytes: int) -> None:
        """``nbytes`` more of the client's audio went to the server."""
        self._heard_ms += pcm_duration_ms(nbytes, self._rate_hz)

    def route(self, message: DuplexMessage) -> list[TurnEvent]:
        """What one server event says of the user's turn (most say nothing)."""
        if isinstance(message, ReplyPart) and isinstance(message.event, ReplyStarted):
            return self.spoke(message.response_id)
        if isinstance(message, Decision) and message.speak:  # after its response.created, or alone
            return self.spoke(message.response_id)
        if isinstance(message, SpeechActivity):
            if not message.started:
                self.speech_stopped()
                return []
            return self.speech_started()
        if isinstance(message, Overlap) and message.is_speech:
            return self.speech_started()
        return []

    def speech_started(self) -> list[TurnEvent]:
        """The server heard the user speak, now: the turn's start, unless it was told already."""
        self._stop_ms = None  # speech (again): where it ends is not known yet
        if self._is_started:
            return []
        self._is_started = True
        if self._interrupted_ms is None:
            self._start_ms = self._heard_ms
        return [SpeechStarted(math.floor(self._start_ms))]

    def speech_stopped(self) -> None:
        """The server heard the speech end; the turn ends when the model speaks."""
        if self._is_started:
            self._stop_ms = self._heard_ms

    def spoke(self, response_id: str | None) -> list[TurnEvent]:
        """The model began response ``response_id``: the turn it answers is over (told once per
        response; nothing for a turn without client audio)."""
        if response_id is not None and response_id == self._answered:
            return []
        self._answered = response_id
        out: list[TurnEvent] = []
        if self._is_started or self._heard_ms > self._start_ms:
            if not self._is_started:
                out.append(SpeechStarted(math.floor(self._start_ms)))
            end_ms = self._heard_ms if self._stop_ms is None else self._stop_ms
            out.append(SpeechStopped(math.floor(max(end_ms, self._start_ms))))
        self._next_turn(self._heard_ms)
        return out

    def interrupted(self, from_ms: float) -> None:
        """The client's voice cut the reply, speaking from ``from_ms``: the next turn begins there."""
        if not self._is_started:
            self._start_ms = self._interrupted_ms = min(max(from_ms, 0.0), self._heard_ms)

    def forget(self) -> None:
        """The client cleared its input: the turn so far is gone."""
        self._next_turn(self._heard_ms)

    def _next_turn(self, start_ms: float) -> None:
        self._start_ms, self._stop_ms, self._is_started = start_ms, None, False
        self._interrupted_ms = None
