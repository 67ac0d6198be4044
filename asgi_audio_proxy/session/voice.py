"""The session's ear: the voice detector fed with client audio and the reply's echo reference.

Owns: bringing client audio to the detector's rate, and turning the detector's decisions into
neutral events (:class:`~asgi_audio_proxy.events.SpeechStarted`, ``SpeechStopped``) or a
:class:`~asgi_audio_proxy.vad.CutReply` for the session to act on; feeding it the reply audio as
it leaves for the client (what may come back as echo). Must not: do I/O or cut anything itself.
"""

from __future__ import annotations

from ..audio.resample import Resampler
from ..events import ReplyAudio, ReplyEnded, ReplyStarted, ServerEvent, SpeechStarted, SpeechStopped
from ..vad.bargein import BargeInConfig, CutReply, VoiceActivity
from ..vad.bargein import SpeechStarted as VoiceStarted
from ..vad.bargein import SpeechStopped as VoiceStopped
from ..vad.detector import DETECTOR_RATE_HZ

__all__ = ["VoiceWatch"]


class VoiceWatch:
    """Per session. Make it off the event loop: the first in a process loads the model (tens of ms).

    Args:
        config: the barge-in policy and the detector's tunables.
    """

    def __init__(self, config: BargeInConfig) -> None:
        self._activity = VoiceActivity(config)
        self._resampler: Resampler | None = None
        #: whether :meth:`heard` gives speech events (not where the upstream's model tells them)
        self.tells_speech = True

    def heard(self, pcm: bytes, rate_hz: int) -> list[SpeechStarted | SpeechStopped | CutReply]:
        """Client audio, in order: speech events for the client, and a cut to make."""
        if rate_hz != DETECTOR_RATE_HZ:
            if self._resampler is None:
                self._resampler = Resampler(rate_hz, DETECTOR_RATE_HZ)
            pcm = self._resampler.feed(pcm)
        out: list[SpeechStarted | SpeechStopped | CutReply] = []
        for decision in self._activity.feed_input(pcm):
            if isinstance(decision, VoiceStarted):
                if self.tells_speech:
                    out.append(SpeechStarted(round(decision.audio_start_ms)))
            elif isinstance(decision, VoiceStopped):
                if self.tells_speech:
                    out.append(SpeechStopped(round(decision.audio_end_ms)))
            else:
                out.append(decision)
        return out

    def sent(self, event: ServerEvent) -> None:
        """An event left for the client: a reply's audio is the echo to tell apart from speech."""
        if isinstance(event, ReplyStarted):
            self._activity.reply_started()
        elif isinstance(event, ReplyAudio):
            self._activity.reply_audio(event.pcm, event.rate_hz)
        elif isinstance(event, ReplyEnded):
            self._activity.reply_ended(cut=event.reason == "stopped")
