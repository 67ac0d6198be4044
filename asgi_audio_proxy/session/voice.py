"""The session's ear: the voice detector fed with client audio and the reply's echo reference.

Owns: bringing client audio to the detector's rate, and turning the detector's decisions into
neutral events (:class:`~asgi_audio_proxy.events.SpeechStarted`, ``SpeechStopped``) or a
:class:`~asgi_audio_proxy.vad.CutReply` for the session to act on; feeding it the reply audio as
it leaves for the client (what may come back as echo). Must not: do I/O or cut anything itself.

Two ways to run the detector. As made, it runs inline: :meth:`VoiceWatch.heard` returns the
decisions the audio completes (tests, benchmarks, code without an event loop). A session hands
it to its loop's :class:`~asgi_audio_proxy.vad.batch.FrameBatcher` (:meth:`VoiceWatch.batch_with`)
before any audio: the Silero model then judges every session's frames in one call per tick, off
the loop, and the decisions come later, to the session's callback, in order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..audio.resample import Resampler
from ..events import ReplyAudio, ReplyEnded, ReplyStarted, ServerEvent, SpeechStarted, SpeechStopped
from ..vad.bargein import BargeInConfig, CutReply, VoiceActivity, VoiceEvent
from ..vad.bargein import SpeechStarted as VoiceStarted
from ..vad.bargein import SpeechStopped as VoiceStopped
from ..vad.batch import BatchStream, FrameBatcher
from ..vad.detector import DETECTOR_RATE_HZ, SileroDetector, default_detector
from ..vad.silero import FRAME_SAMPLES

__all__ = ["VoiceWatch"]

Heard = SpeechStarted | SpeechStopped | CutReply


class VoiceWatch:
    """Per session. Make it off the event loop: the first in a process loads the model (tens of ms).

    Args:
        config: the barge-in policy and the detector's tunables.
    """

    def __init__(self, config: BargeInConfig) -> None:
        self._config = config
        detector = default_detector() if config.policy != "off" else None
        #: the Silero model runs here, so it can run batched (the fallback always runs inline)
        self.is_batchable = isinstance(detector, SileroDetector)
        self._activity = VoiceActivity(config, detector)
        self._resampler: Resampler | None = None
        self._stream: BatchStream | None = None
        self._on_heard: Callable[[list[Heard]], None] | None = None
        self._has_heard = False
        #: whether :meth:`heard` gives speech events (not where the upstream's model tells them)
        self.tells_speech = True

    @property
    def cuts_replies(self) -> bool:
        """Whether speech over a reply cuts it: policy ``voice``, or the session says so for a
        client that asked (a Realtime session's ``interrupt_response``); never under ``off``."""
        return self._activity.cuts_replies

    @cuts_replies.setter
    def cuts_replies(self, cuts: bool) -> None:
        self._activity.cuts_replies = cuts and self._config.policy != "off"

    @property
    def coalesced_frames(self) -> int:
        """Frames the batch's model skipped because its thread fell behind (see ``vad.batch``)."""
        return self._stream.coalesced_frames if self._stream is not None else 0

    def batch_with(self, batcher: FrameBatcher, on_heard: Callable[[list[Heard]], None]) -> None:
        """Run the detector in ``batcher``'s ticks from now on; call on its loop, before any audio.

        Args:
            batcher: the loop's batcher.
            on_heard: gets the decisions, on the loop, in order, whenever a tick completes some.

        Raises:
            RuntimeError: audio was heard already, or the detector is not the Silero model.
        """
        if self._has_heard or not self.is_batchable:
            raise RuntimeError("only a Silero detector that has heard nothing yet can run batched")
        cuts = self._activity.cuts_replies
        self._activity = VoiceActivity(self._config, frame_ms=FRAME_SAMPLES * 1000 / DETECTOR_RATE_HZ)
        self._activity.cuts_replies = cuts
        self._on_heard = on_heard
        self._stream = batcher.join(self._judged)

    def close(self) -> None:
        """The session ended: leave the batch; no decision is delivered after this."""
        if self._stream is not None:
            self._stream.leave()
        self._on_heard = None

    def heard(self, pcm: bytes, rate_hz: int) -> list[Heard]:
        """Client audio, in order: speech events for the client, and a cut to make (none yet when
        batched: those go to the ``on_heard`` callback)."""
        self._has_heard = True
        if rate_hz != DETECTOR_RATE_HZ:
            if self._resampler is None:
                self._resampler = Resampler(rate_hz, DETECTOR_RATE_HZ)
            pcm = self._resampler.feed(pcm)
        if self._stream is None:
            return self._told(self._activity.feed_input(pcm))
        if not self._stream.has_left:
            frames = self._activity.take_input(pcm)
            if len(frames):
                self._stream.feed(frames)
        return []

    def sent(self, event: ServerEvent) -> None:
        """An event left for the client: a reply's audio is the echo to tell apart from speech."""
        if isinstance(event, ReplyStarted):
            self._activity.reply_started()
        elif isinstance(event, ReplyAudio):
            self._activity.reply_audio(event.pcm, event.rate_hz)
        elif isinstance(event, ReplyEnded):
            self._activity.reply_ended(cut=event.reason == "stopped")

    def _judged(self, probabilities: list[float], powers: np.ndarray) -> None:
        """A tick's probabilities (and band powers) for this session's frames, on the loop."""
        heard = self._told(self._activity.decide(probabilities, powers))
        if heard and self._on_heard is not None:
            self._on_heard(heard)

    def _told(self, decisions: list[VoiceEvent]) -> list[Heard]:
        out: list[Heard] = []
        for decision in decisions:
            if isinstance(decision, VoiceStarted):
                if self.tells_speech:
                    out.append(SpeechStarted(round(decision.audio_start_ms)))
            elif isinstance(decision, VoiceStopped):
                if self.tells_speech:
                    out.append(SpeechStopped(round(decision.audio_end_ms)))
            else:
                out.append(decision)
        return out
