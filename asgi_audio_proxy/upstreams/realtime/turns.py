"""The proxy's own end of a user's turn, for servers whose VAD is off (``turn_detection: "proxy"``).

Owns: :class:`TurnDetector`, the package's voice detector (:class:`~asgi_audio_proxy.vad.VoiceActivity`,
with the operator's tunables) fed with the audio going to the server and the reply audio coming
back (its echo must not count as the user), and the one decision made of it: the user spoke and
then was silent for ``min_silence_ms``, so the turn is over. Must not: do I/O, read a clock, or
send anything: the adapter commits the turn.

As made, the detector runs inline: :meth:`TurnDetector.heard` says at once whether the audio ended
a turn. The adapter hands a Silero detector to its loop's
:class:`~asgi_audio_proxy.vad.batch.FrameBatcher` (:meth:`TurnDetector.batch_with`), as a
session does its own: every conversation's frames are then judged in one call per tick, off the
loop, and a turn that ends is told to the adapter's callback, in order with what it forgot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ...audio.resample import Resampler
from ...events import ReplyAudio, ReplyEnded, UpstreamEvent
from ...vad.bargein import BargeInConfig, SpeechStarted, SpeechStopped, VoiceActivity, VoiceEvent
from ...vad.batch import BatchStream, FrameBatcher
from ...vad.detector import DETECTOR_RATE_HZ, SileroDetector, SpeechDetector, default_detector
from ...vad.silero import FRAME_SAMPLES

__all__ = ["TurnDetector"]


class TurnDetector:
    """One conversation's turn ends. Make it off the event loop: the detector's model takes tens
    of ms to load.

    Args:
        config: the detector's tunables (the proxy's ``barge_in`` settings; its policy is not
            used: this detector never cuts a reply).
        input_rate_hz: the rate of the audio :meth:`heard` is fed.
        detector: the frame-level detector (the packaged one by default).
    """

    def __init__(self, config: BargeInConfig, input_rate_hz: int,
                 detector: SpeechDetector | None = None) -> None:
        self._config = replace(config, policy="control")
        detector = detector if detector is not None else default_detector()
        #: the Silero model runs here, so it can run batched (the fallback always runs inline)
        self.is_batchable = isinstance(detector, SileroDetector)
        self._activity = VoiceActivity(self._config, detector)
        self._resampler = None if input_rate_hz == DETECTOR_RATE_HZ else Resampler(input_rate_hz,
                                                                                   DETECTOR_RATE_HZ)
        self._speaking = False  # speech started since the last turn ended
        self._has_turn = False  # a turn ended and has not been taken
        self._has_heard = False
        # batched: the frames given to the batch so far, and how many of them a forget covers
        # (their decisions, which come later, were the forgotten turn's)
        self._stream: BatchStream | None = None
        self._on_turn: Callable[[], None] | None = None
        self._frames_fed = self._frames_judged = self._frames_forgotten = 0

    def batch_with(self, batcher: FrameBatcher, on_turn: Callable[[], None]) -> None:
        """Run the detector in ``batcher``'s ticks from now on; call on its loop, before any audio.

        Args:
            batcher: the loop's batcher.
            on_turn: called on the loop when the audio it judged ended a turn (:attr:`has_turn`).

        Raises:
            RuntimeError: audio was heard already, or the detector is not the Silero model.
        """
        if self._has_heard or not self.is_batchable:
            raise RuntimeError("only a Silero detector that has heard nothing yet can run batched")
        self._activity = VoiceActivity(self._config, frame_ms=FRAME_SAMPLES * 1000 / DETECTOR_RATE_HZ)
        self._on_turn = on_turn
        self._stream = batcher.join(self._judged)

    def close(self) -> None:
        """The conversation is over: leave the batch; no turn is told after this."""
        if self._stream is not None:
            self._stream.leave()
        self._on_turn = None

    @property
    def has_turn(self) -> bool:
        """A turn has ended and waits to be committed."""
        return self._has_turn

    def heard(self, pcm: bytes) -> bool:
        """The user's audio, in order, as it goes to the server; returns :attr:`has_turn` (when
        batched, what the frames judged so far said: a turn this audio ends is told later)."""
        self._has_heard = True
        if self._resampler is not None:
            pcm = self._resampler.feed(pcm)
        if self._stream is None:
            self._told(self._activity.feed_input(pcm))
        elif not self._stream.has_left:
            frames = self._activity.take_input(pcm)
            if len(frames):
                self._frames_fed += len(frames)
                self._stream.feed(frames)
        return self._has_turn

    def _judged(self, probabilities: list[float], powers: np.ndarray) -> None:
        """A tick's probabilities (and band powers) for this conversation's frames, on the loop."""
        for index, probability in enumerate(probabilities):
            decisions = self._activity.decide([probability], powers[index : index + 1])
            self._frames_judged += 1
            if self._frames_judged <= self._frames_forgotten:  # heard before a forget
                continue
            had_turn = self._has_turn
            self._told(decisions)
            if self._has_turn and not had_turn and self._on_turn is not None:
                self._on_turn()  # each turn as it ends, as heard() would have said inline

    def _told(self, decisions: list[VoiceEvent]) -> None:
        for decision in decisions:
            if isinstance(decision, SpeechStarted):
                self._speaking = True
            elif isinstance(decision, SpeechStopped) and self._speaking:
                self._speaking, self._has_turn = False, True

    def take_turn(self) -> bool:
        """Take the turn that ended, if one did (the adapter commits it now)."""
        taken, self._has_turn = self._has_turn, False
        return taken

    def forget(self) -> None:
        """The turn so far was committed or cleared by the client: nothing of it is pending (nor
        of the audio heard so far, whose decisions may still be on their way when batched)."""
        self._speaking = self._has_turn = False
        self._frames_forgotten = self._frames_fed

    def replied(self, event: UpstreamEvent) -> None:
        """A reply event on its way to the client: its audio is the echo to expect."""
        if isinstance(event, ReplyAudio):
            self._activity.reply_audio(event.pcm, event.rate_hz)
        elif isinstance(event, ReplyEnded):
            self._activity.reply_ended(cut=event.reason == "stopped")

    def cut(self) -> None:
        """The proxy cut the reply: only what already played can echo."""
        self._activity.reply_ended(cut=True)
