"""The proxy's own end of a user's turn, for servers whose VAD is off (``turn_detection: "proxy"``).

Owns: :class:`TurnDetector`, the package's voice detector (:class:`~asgi_audio_proxy.vad.VoiceActivity`,
with the operator's tunables) fed with the audio going to the server and the reply audio coming
back (its echo must not count as the user), and the one decision made of it: the user spoke and
then was silent for ``min_silence_ms``, so the turn is over. Must not: do I/O, read a clock, or
send anything: the adapter commits the turn.
"""

from __future__ import annotations

from dataclasses import replace

from ...audio.resample import Resampler
from ...events import ReplyAudio, ReplyEnded, UpstreamEvent
from ...vad.bargein import BargeInConfig, SpeechStarted, SpeechStopped, VoiceActivity
from ...vad.detector import DETECTOR_RATE_HZ, SpeechDetector

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
        self._activity = VoiceActivity(replace(config, policy="control"), detector)
        self._resampler = None if input_rate_hz == DETECTOR_RATE_HZ else Resampler(input_rate_hz,
                                                                                   DETECTOR_RATE_HZ)
        self._speaking = False  # speech started since the last turn ended
        self._has_turn = False  # a turn ended and has not been taken

    @property
    def has_turn(self) -> bool:
        """A turn has ended and waits to be committed."""
        return self._has_turn

    def heard(self, pcm: bytes) -> bool:
        """The user's audio, in order, as it goes to the server; returns :attr:`has_turn`."""
        if self._resampler is not None:
            pcm = self._resampler.feed(pcm)
        for decision in self._activity.feed_input(pcm):
            if isinstance(decision, SpeechStarted):
                self._speaking = True
            elif isinstance(decision, SpeechStopped) and self._speaking:
                self._speaking, self._has_turn = False, True
        return self._has_turn

    def take_turn(self) -> bool:
        """Take the turn that ended, if one did (the adapter commits it now)."""
        taken, self._has_turn = self._has_turn, False
        return taken

    def forget(self) -> None:
        """The turn so far was committed or cleared by the client: nothing of it is pending."""
        self._speaking = self._has_turn = False

    def replied(self, event: UpstreamEvent) -> None:
        """A reply event on its way to the client: its audio is the echo to expect."""
        if isinstance(event, ReplyAudio):
            self._activity.reply_audio(event.pcm, event.rate_hz)
        elif isinstance(event, ReplyEnded):
            self._activity.reply_ended(cut=event.reason == "stopped")

    def cut(self) -> None:
        """The proxy cut the reply: only what already played can echo."""
        self._activity.reply_ended(cut=True)
