"""Voice barge-in: when the client starts and stops speaking, and when that should cut the reply.

Owns: :data:`BargeInPolicy`, :class:`BargeInConfig` and :class:`VoiceActivity`, the per-session
decision fed by the session with the client's audio and the reply audio it sends, returning frozen
events (:class:`SpeechStarted`, :class:`SpeechStopped`, :class:`CutReply`). Times are milliseconds of
input audio since the session started: the count of samples fed, so the decisions depend on the audio
alone, never on when it arrived.

While a reply plays, a frame is the client's speech only if the detector's probability reaches the
higher ``reply_threshold`` *and* at least ``min_unexplained_share`` of its energy is more than the
reply's own echo could be (:class:`~asgi_audio_proxy.vad.echo.EchoReference`): a phone on speaker
hears the reply, which is speech too.

Must not: do I/O, read a clock, or cut anything itself: the session acts on the events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .detector import DETECTOR_RATE_HZ, SpeechDetector, default_detector
from .echo import EchoReference

__all__ = [
    "BargeInConfig",
    "BargeInPolicy",
    "CutReply",
    "SpeechStarted",
    "SpeechStopped",
    "VoiceActivity",
    "VoiceEvent",
]

BargeInPolicy = Literal["off", "control", "voice"]
_POLICIES: tuple[BargeInPolicy, ...] = ("off", "control", "voice")

#: today's behaviour: only an explicit ``stop`` cuts a reply; speech events are still reported
DEFAULT_POLICY: BargeInPolicy = "control"
#: speech this long over a reply cuts it (five Silero frames, eight of the fallback's): a word, not a
#: cough or a click (< 150 ms); a sixth frame added 32 ms to every cut and stopped no false one
DEFAULT_MIN_SPEECH_MS = 160.0
#: this much speech starts a segment (``speech_started``): longer than a click, shorter than a syllable
DEFAULT_START_SPEECH_MS = 90.0
#: Silero's own recommended decision point
DEFAULT_SPEECH_THRESHOLD = 0.5
#: while a reply plays its echo is speech too: ask the detector to be surer
DEFAULT_REPLY_THRESHOLD = 0.7
#: silence this long ends a segment (``speech_stopped``): longer than a pause between words
DEFAULT_MIN_SILENCE_MS = 500.0
#: the echo of what was played arrives within this: network, playout buffer and the air
DEFAULT_MAX_ECHO_DELAY_MS = 300.0
#: the loudest echo assumed until measured: a phone on speaker, held close, returns about -6 dB
DEFAULT_ECHO_LOSS_DB = 6.0
#: a frame over a reply must be mostly not echo to count as the client's voice
DEFAULT_MIN_UNEXPLAINED_SHARE = 0.5
#: before a segment has started, a gap this long drops the candidate: two clicks are not a word
_START_GAP_MS = 100.0
#: once a segment has started, a frame continues it at 0.15 below the threshold and half the
#: unexplained share (Silero's own hysteresis is 0.15)
_CONTINUE_THRESHOLD_DROP = 0.15
_CONTINUE_SHARE_FACTOR = 0.5


@dataclass(frozen=True, kw_only=True)
class BargeInConfig:
    """How voice activity is reported and when speech cuts a reply.

    Attributes:
        policy: ``off`` (no detection at all), ``control`` (events reported; only an explicit stop
            cuts) or ``voice`` (speech over a reply also cuts it).
        min_speech_ms: speech over a playing reply needed before :class:`CutReply`.
        start_speech_ms: speech needed before :class:`SpeechStarted`.
        speech_threshold: detector probability that counts as speech when no reply plays.
        reply_threshold: the same while a reply plays; at least ``speech_threshold``.
        min_silence_ms: non-speech needed before :class:`SpeechStopped`.
        max_echo_delay_ms: the longest delay at which the reply's echo is expected back.
        echo_loss_db: the loudest echo assumed, in dB below the reply, until measured.
        min_unexplained_share: share of a frame's energy beyond the echo for it to be speech.
    """

    policy: BargeInPolicy = DEFAULT_POLICY
    min_speech_ms: float = DEFAULT_MIN_SPEECH_MS
    start_speech_ms: float = DEFAULT_START_SPEECH_MS
    speech_threshold: float = DEFAULT_SPEECH_THRESHOLD
    reply_threshold: float = DEFAULT_REPLY_THRESHOLD
    min_silence_ms: float = DEFAULT_MIN_SILENCE_MS
    max_echo_delay_ms: float = DEFAULT_MAX_ECHO_DELAY_MS
    echo_loss_db: float = DEFAULT_ECHO_LOSS_DB
    min_unexplained_share: float = DEFAULT_MIN_UNEXPLAINED_SHARE

    def __post_init__(self) -> None:
        if self.policy not in _POLICIES:
            raise ValueError(f"policy must be one of {_POLICIES}, not {self.policy!r}")
        durations = ("min_speech_ms", "start_speech_ms", "min_silence_ms", "max_echo_delay_ms")
        for name in (*durations, "echo_loss_db"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        for name in ("speech_threshold", "reply_threshold", "min_unexplained_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
        if self.reply_threshold < self.speech_threshold:
            raise ValueError(
                f"reply_threshold must be at least speech_threshold ({self.speech_threshold}), "
                f"not {self.reply_threshold!r}"
            )


@dataclass(frozen=True)
class SpeechStarted:
    """The client started speaking at ``audio_start_ms`` of input audio."""

    audio_start_ms: float


@dataclass(frozen=True)
class SpeechStopped:
    """The client stopped speaking at ``audio_end_ms`` of input audio."""

    audio_end_ms: float


@dataclass(frozen=True)
class CutReply:
    """Under policy ``voice``: the client spoke over the reply from ``audio_start_ms``; cut it."""

    audio_start_ms: float


VoiceEvent = SpeechStarted | SpeechStopped | CutReply


class VoiceActivity:
    """One session's voice activity: client audio in, speech and barge-in events out.

    Args:
        config: the policy and its tunables.
        detector: the frame-level detector; :func:`~asgi_audio_proxy.vad.default_detector` if
            omitted (none is made under policy ``off``).
    """

    def __init__(self, config: BargeInConfig, detector: SpeechDetector | None = None) -> None:
        self._config = config
        self._detector = detector if detector is not None or config.policy == "off" else default_detector()
        frame_ms = self._detector.frame_ms if self._detector is not None else 20.0
        self._frame_ms = frame_ms
        self._frame_bytes = round(frame_ms * DETECTOR_RATE_HZ / 1000) * 2
        self._echo = EchoReference(
            DETECTOR_RATE_HZ, config.max_echo_delay_ms, config.echo_loss_db, self._frame_bytes // 2
        )
        self._unanalysed = bytearray()
        self._analysed_samples = 0
        self._reply_open = False
        self._cut_sent = False
        # the current segment: where it began, its speech, its speech over a reply, the silence since
        self._run_start: int | None = None
        self._started = False
        self._speech_ms = 0.0
        self._reply_speech_ms = 0.0
        self._silence_ms = 0.0
        self._last_speech_end = 0

    @property
    def is_reply_playing(self) -> bool:
        """A reply has started and its audio (and echo) has not yet played out on the input clock."""
        return self._reply_open or self._analysed_samples < self._echo.plays_until

    def reply_started(self) -> None:
        """The upstream began a reply: from now on, speech may cut it (policy ``voice``)."""
        self._reply_open = True
        self._cut_sent = False

    def reply_audio(self, pcm: bytes, rate_hz: int) -> None:
        """Reply audio the proxy just sent to the client (PCM16 LE mono): the echo to expect.

        Implies :meth:`reply_started` if no reply is open.
        """
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, not {rate_hz!r}")
        if not self._reply_open:
            self.reply_started()
        if self._config.policy != "off":
            self._echo.play(pcm, rate_hz, self._analysed_samples + len(self._unanalysed) // 2)

    def reply_ended(self, *, cut: bool = False) -> None:
        """The proxy sent the last of the reply; its audio still plays out (and echoes) for a while.

        Args:
            cut: the reply was cut and the client told to drop what it had queued: only what
                has already played can echo.
        """
        self._reply_open = False
        if cut:
            self._echo.cut(self._analysed_samples + len(self._unanalysed) // 2)

    def feed_input(self, pcm: bytes) -> list[VoiceEvent]:
        """Client audio (PCM16 LE mono 16 kHz, any length, in order); the events it completes."""
        if self._detector is None:
            return []
        self._unanalysed += pcm
        events: list[VoiceEvent] = []
        for probability in self._detector.feed(pcm):
            frame = np.frombuffer(bytes(self._unanalysed[: self._frame_bytes]), dtype="<i2")
            del self._unanalysed[: self._frame_bytes]
            start = self._analysed_samples
            self._analysed_samples += len(frame)
            events.extend(self._decide(probability, frame.astype(np.float64) / 32768.0, start))
        return events

    def _decide(self, probability: float, frame: np.ndarray, start: int) -> list[VoiceEvent]:
        config = self._config
        playing = self._reply_open or start < self._echo.plays_until
        unexplained = self._echo.observe(frame, start)
        # hysteresis: a started segment goes on at a lower bar, so a word's quieter frames still count
        drop = _CONTINUE_THRESHOLD_DROP if self._started else 0.0
        share = config.min_unexplained_share * (_CONTINUE_SHARE_FACTOR if self._started else 1.0)
        if playing:
            is_speech = probability >= config.reply_threshold - drop and unexplained >= share
        else:
            is_speech = probability >= config.speech_threshold - drop
        events: list[VoiceEvent] = []
        if is_speech:
            if self._run_start is None:
                self._run_start = start
            self._speech_ms += self._frame_ms
            self._silence_ms = 0.0
            self._last_speech_end = start + len(frame)
            if playing:
                self._reply_speech_ms += self._frame_ms
            if not self._started and self._speech_ms >= config.start_speech_ms:
                self._started = True
                events.append(SpeechStarted(_ms(self._run_start)))
            if (
                config.policy == "voice"
                and playing
                and not self._cut_sent
                and self._reply_speech_ms >= config.min_speech_ms
            ):
                self._cut_sent = True
                events.append(CutReply(_ms(self._run_start)))
        elif self._run_start is not None:
            self._silence_ms += self._frame_ms
            limit = config.min_silence_ms if self._started else _START_GAP_MS
            if self._silence_ms >= limit:
                if self._started:
                    events.append(SpeechStopped(_ms(self._last_speech_end)))
                self._run_start = None
                self._started = False
                self._speech_ms = self._reply_speech_ms = self._silence_ms = 0.0
        return events


def _ms(samples: int) -> float:
    return samples * 1000 / DETECTOR_RATE_HZ
