"""The test client's bookkeeping: which turn we are in, what came back, and how fast.

Owns: :class:`TurnTracker`, fed what the client sent and received with the time it happened, its
:class:`TurnPhase` (whether a reply is owed, so the sender knows when to stop), and the
:class:`TurnResult` of each finished turn (reply text, seconds of reply audio, latency from
the end of the user's audio to the first reply audio, how the turn ended). Must not: import
asyncio or a network library, or read a clock: every call takes ``now`` (seconds, monotonic).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from ..audio.wav import CLIENT_SAMPLE_RATE_HZ

__all__ = ["TurnEndReason", "TurnPhase", "TurnResult", "TurnTracker"]

TurnEndReason = Literal["complete", "stopped", "interrupted", "timeout"]
#: how the proxy ends a turn, plus the client's own "no answer in time"
_REASONS: frozenset[str] = frozenset({"complete", "stopped", "interrupted", "timeout"})


@dataclass(frozen=True, slots=True)
class TurnResult:
    """One finished turn, as the client saw it.

    Attributes:
        number: 1-based.
        text: the reply's text, deltas joined.
        reply_audio_s: seconds of reply audio (16 kHz PCM16).
        latency_s: end of the user's audio to the first reply audio; ``None`` without either.
        reason: ``turn_end``'s reason, or ``"timeout"`` when the client gave up waiting.
    """

    number: int
    text: str
    reply_audio_s: float
    latency_s: float | None
    reason: TurnEndReason

    @property
    def got_reply(self) -> bool:
        """Whether any reply audio came back in this turn."""
        return self.reply_audio_s > 0


class TurnPhase(enum.Enum):
    """Where the conversation is, as the client sees it.

    ``LISTENING``: nothing is owed (no speech since the last turn ended). ``AWAITING_REPLY``: the
    user spoke, or said an utterance in full, and no reply has started. ``REPLYING``: reply text or
    audio came, its ``turn_end`` has not. A ``turn_end`` (or the client's timeout) always goes
    back to ``LISTENING``.
    """

    LISTENING = "listening"
    AWAITING_REPLY = "awaiting_reply"
    REPLYING = "replying"


@dataclass(slots=True)
class TurnTracker:
    """Follows turns from the frames the client sends and the messages it receives.

    A turn is the user's speech and its reply, not a fixed stretch of what the client sends: a
    recording may hold several turns, and a reply that comes while it is still being sent
    belongs to the speech before it. The sender says an utterance between
    :meth:`utterance_started` and :meth:`utterance_ended`, then keeps the line open (silence)
    while :attr:`owes_reply`.

    The user's audio "ends" at the send time of the last loud frame (see
    :func:`~asgi_audio_proxy.client.audio.is_loud`) before the reply's first audio; the frame is
    sent when its last sample was captured, so that is when the user stopped. Loud frames while
    a reply arrives are its echo, not the user.
    """

    results: list[TurnResult] = field(default_factory=list)
    sent_s: float = 0.0
    phase: TurnPhase = TurnPhase.LISTENING
    _speech_end: float | None = None
    _first_audio: float | None = None
    _text: list[str] = field(default_factory=list)
    _reply_bytes: int = 0
    _utterance_first_turn: int = 0

    @property
    def in_reply(self) -> bool:
        """Whether a reply has started (text or audio) and its ``turn_end`` has not come."""
        return self.phase is TurnPhase.REPLYING

    @property
    def owes_reply(self) -> bool:
        """Whether a turn is open: the user spoke and its reply has not ended."""
        return self.phase is not TurnPhase.LISTENING

    @property
    def reply_text(self) -> str:
        """The current reply's text so far."""
        return "".join(self._text)

    def utterance_started(self) -> None:
        """The sender starts saying one utterance (a generated burst, or the whole file)."""
        self._utterance_first_turn = len(self.results)

    def utterance_ended(self, now: float) -> None:
        """The sender has said the utterance in full at ``now``.

        If nothing in it opened a turn (no loud frame, no reply: a quiet recording the upstream
        may still hear as speech), a reply is owed from now. A turn that it opened and that has
        ended already (the reply came during its trailing silence) stays done.
        """
        if self.phase is TurnPhase.LISTENING and len(self.results) == self._utterance_first_turn:
            self.phase, self._speech_end = TurnPhase.AWAITING_REPLY, now

    def frame_sent(self, now: float, nbytes: int, *, loud: bool) -> None:
        """A frame of ``nbytes`` of PCM16 went out at ``now``."""
        self.sent_s += nbytes / 2 / CLIENT_SAMPLE_RATE_HZ
        if loud and self.phase is not TurnPhase.REPLYING:
            self.phase, self._speech_end = TurnPhase.AWAITING_REPLY, now

    def reply_text_received(self, text: str) -> None:
        self.phase = TurnPhase.REPLYING
        self._text.append(text)

    def reply_audio_received(self, now: float, nbytes: int) -> None:
        self.phase = TurnPhase.REPLYING
        if self._first_audio is None:
            self._first_audio = now
        self._reply_bytes += nbytes

    def turn_ended(self, reason: str) -> TurnResult:
        """Close the current turn (a ``turn_end`` arrived, or the client timed out).

        Raises:
            ValueError: an unknown reason.
        """
        if reason not in _REASONS:
            raise ValueError(f"unknown turn end reason {reason!r}")
        latency = None
        if self._first_audio is not None and self._speech_end is not None:
            latency = max(0.0, self._first_audio - self._speech_end)
        result = TurnResult(
            number=len(self.results) + 1,
            text=self.reply_text,
            reply_audio_s=self._reply_bytes / 2 / CLIENT_SAMPLE_RATE_HZ,
            latency_s=latency,
            reason=reason,  # type: ignore[arg-type]  # checked against _REASONS above
        )
        self.results.append(result)
        self.phase = TurnPhase.LISTENING
        self._speech_end, self._first_audio, self._reply_bytes = None, None, 0
        self._text = []
        return result

    def all_answered(self, expected_turns: int) -> bool:
        """Whether at least ``expected_turns`` turns ended and every one got reply audio."""
        return len(self.results) >= expected_turns and all(r.got_reply for r in self.results)
