"""Voice barge-in: when the client starts and stops speaking, and when that should cut the reply.

Owns: :class:`VoiceActivity` (its settings, :class:`BargeInConfig`, live in ``config.py``), the
per-session decision fed by the session with the client's audio and the reply audio it sends,
returning frozen events (:class:`SpeechStarted`, :class:`SpeechStopped`, :class:`CutReply`).
Times are milliseconds of input audio since the session started: the count of samples fed, so
the decisions depend on the audio alone, never on when it arrived.

The detector may run here (:meth:`VoiceActivity.feed_input`) or elsewhere, batched with other
sessions' frames (:meth:`VoiceActivity.take_input`, then :meth:`VoiceActivity.decide` with the
probabilities, later). Then what the session says of the reply in between waits for the frames
taken before it, so the decisions are the same as if each frame had been decided as it came.

While a reply plays, a frame is the client's speech only if the detector's probability reaches the
higher ``reply_threshold`` *and* at least ``min_unexplained_share`` of its energy is more than the
reply's own echo could be (:class:`~asgi_audio_proxy.vad.echo.EchoReference`): a phone on speaker
hears the reply, which is speech too.

The reply, as the proxy has sent it, is a :class:`~asgi_audio_proxy.reply_state.ReplyLifecycle`:
playing from its start (or its first audio) until its end; the detector asks it, never a flag.

Must not: do I/O, read a clock, or cut anything itself: the session acts on the events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..config import BargeInConfig, BargeInPolicy  # kept here too: the VAD's settings, named where used
from ..reply_state import ReplyLifecycle
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

#: before a segment has started, a gap this long drops the candidate: two clicks are not a word
_START_GAP_MS = 100.0
#: once a segment has started, a frame continues it at 0.15 below the threshold and half the
#: unexplained share (Silero's own hysteresis is 0.15)
_CONTINUE_THRESHOLD_DROP = 0.15
_CONTINUE_SHARE_FACTOR = 0.5


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
            omitted (none is made under policy ``off``, nor when ``frame_ms`` is given).
        frame_ms: the probabilities come from a detector run elsewhere on frames of this
            duration (:meth:`take_input` and :meth:`decide`); ``detector`` must then be omitted.
    """

    def __init__(self, config: BargeInConfig, detector: SpeechDetector | None = None, *,
                 frame_ms: float | None = None) -> None:
        if detector is not None and frame_ms is not None:
            raise ValueError("give a detector or the frame_ms of one run elsewhere, not both")
        self._config = config
        #: speech over a reply asks for a cut (:class:`CutReply`): policy ``voice``, or a client
        #: that asked for it itself (the session sets it; never under policy ``off``)
        self.cuts_replies = config.policy == "voice"
        elsewhere = frame_ms is not None
        self._detector = (detector if detector is not None or config.policy == "off" or elsewhere
                          else default_detector())
        self._is_detecting = self._detector is not None or (elsewhere and config.policy != "off")
        if frame_ms is None:
            frame_ms = self._detector.frame_ms if self._detector is not None else 20.0
        self._frame_ms = frame_ms
        self._frame_bytes = round(frame_ms * DETECTOR_RATE_HZ / 1000) * 2
        self._echo = EchoReference(
            DETECTOR_RATE_HZ, config.max_echo_delay_ms, config.echo_loss_db, self._frame_bytes // 2
        )
        self._unanalysed = bytearray()  # input not yet decided, the partial frame at its end
        self._analysed_samples = 0
        self._frames_taken = self._frames_decided = 0
        # what the session said of the reply while frames taken before it waited for their
        # probabilities: (frames taken then, the change), applied once those are decided
        self._deferred: deque[tuple[int, Callable[[], None]]] = deque()
        self._reply = ReplyLifecycle("voice")  # as sent to the client
        # a CutReply was asked for this reply: one is enough (the session cuts it, or finds it
        # over); not the reply's phase, which moves only when the session's cut is sent
        self._has_asked_cut = False
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
        return self._reply.is_playing or self._analysed_samples < self._echo.plays_until

    def reply_started(self) -> None:
        """The upstream began a reply: from now on, speech may cut it (policy ``voice``)."""
        self._in_order(self._start_reply)

    def _start_reply(self) -> None:
        if not self._reply.is_playing:
            self._reply.start()
        self._has_asked_cut = False

    def reply_audio(self, pcm: bytes, rate_hz: int) -> None:
        """Reply audio the proxy just sent to the client (PCM16 LE mono): the echo to expect.

        Implies :meth:`reply_started` if no reply is open.
        """
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, not {rate_hz!r}")
        now = self._fed_samples

        def play() -> None:
            if not self._reply.is_playing:
                self._start_reply()
            self._reply.more()
            if self._config.policy != "off":
                self._echo.play(pcm, rate_hz, now)

        self._in_order(play)

    def reply_ended(self, *, cut: bool = False) -> None:
        """The proxy sent the last of the reply; its audio still plays out (and echoes) for a while.

        Args:
            cut: the reply was cut and the client told to drop what it had queued: only what
                has already played can echo.
        """
        now = self._fed_samples

        def end() -> None:
            if self._reply.is_playing:  # else none was playing: nothing to end
                if cut:
                    self._reply.cut()
                    self._reply.close()  # what was queued of it is dropped: nothing more of it plays
                else:
                    self._reply.end()
            if cut:
                self._echo.cut(now)

        self._in_order(end)

    @property
    def _fed_samples(self) -> int:
        """Every input sample taken so far: the input clock's now."""
        return self._analysed_samples + len(self._unanalysed) // 2

    def _in_order(self, change: Callable[[], None]) -> None:
        """Apply a change of the reply now, or once the frames taken before it are decided."""
        if self._frames_decided == self._frames_taken:
            change()
        else:
            self._deferred.append((self._frames_taken, change))

    def feed_input(self, pcm: bytes) -> list[VoiceEvent]:
        """Client audio (PCM16 LE mono 16 kHz, any length, in order); the events it completes."""
        if self._detector is None:
            return []
        self._take(pcm)
        return self.decide(self._detector.feed(pcm))

    def take_input(self, pcm: bytes) -> np.ndarray:
        """Client audio as :meth:`feed_input` takes it, for a detector run elsewhere.

        Returns:
            The frames it completes, (count, samples) int16, for the detector; their
            probabilities go to :meth:`decide`, in order. None under policy ``off``.
        """
        if not self._is_detecting:
            return np.empty((0, self._frame_bytes // 2), dtype=np.int16)
        first = len(self._unanalysed) // self._frame_bytes * self._frame_bytes
        whole = self._take(pcm)
        end = first + whole * self._frame_bytes
        frames = np.frombuffer(bytes(self._unanalysed[first:end]), dtype="<i2")
        return frames.reshape(whole, self._frame_bytes // 2)

    def _take(self, pcm: bytes) -> int:
        """Keep ``pcm`` until decided; the count of frames it completes."""
        whole = (len(self._unanalysed) % self._frame_bytes + len(pcm)) // self._frame_bytes
        self._unanalysed += pcm
        self._frames_taken += whole
        return whole

    def decide(self, probabilities: Sequence[float], powers: np.ndarray | None = None
               ) -> list[VoiceEvent]:
        """The speech probabilities of the next frames taken, in order; the events they complete.

        ``powers``: the frames' band powers for the echo comparison, one row each
        (:func:`~asgi_audio_proxy.vad.echo.band_powers`), if already taken.
        """
        if len(probabilities) > self._frames_taken - self._frames_decided:
            raise ValueError(f"{len(probabilities)} probabilities for "
                             f"{self._frames_taken - self._frames_decided} frames taken")
        events: list[VoiceEvent] = []
        for index, probability in enumerate(probabilities):
            self._apply_deferred()
            frame = np.frombuffer(bytes(self._unanalysed[: self._frame_bytes]), dtype="<i2")
            del self._unanalysed[: self._frame_bytes]
            start = self._analysed_samples
            self._analysed_samples += len(frame)
            self._frames_decided += 1
            row = powers[index] if powers is not None else None
            events.extend(self._decide(probability, frame.astype(np.float64) / 32768.0, start, row))
        self._apply_deferred()
        return events

    def _apply_deferred(self) -> None:
        while self._deferred and self._deferred[0][0] <= self._frames_decided:
            self._deferred.popleft()[1]()

    def _decide(self, probability: float, frame: np.ndarray, start: int,
                powers: np.ndarray | None) -> list[VoiceEvent]:
        config = self._config
        playing = self._reply.is_playing or start < self._echo.plays_until
        unexplained = self._echo.observe(frame, start, powers)
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
                self.cuts_replies
                and playing
                and not self._has_asked_cut
                and self._reply_speech_ms >= config.min_speech_ms
            ):
                self._has_asked_cut = True
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
