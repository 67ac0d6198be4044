"""Real speech for the voice-activity tests and benchmark: ``espeak-ng`` utterances at 16 kHz.

Owns: synthesis (``espeak-ng`` to 22 050 Hz WAV in memory, band-limited to 16 kHz PCM16), a cache of
the results on disk, the reference labelling (speech where a clean utterance's 10 ms energy is within
40 dB of its loudest), and the scenes the tests build from them: white and pink noise at a chosen SNR,
short bursts, and the reply's echo as a phone would return it (delayed, band-limited, with a room's
reflections). Everything but the synthesis is a pure function of its seed.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import shutil
import subprocess
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asgi_audio_proxy.vad import VoiceActivity, VoiceEvent
from tests.timing import within

__all__ = [
    "ESPEAK",
    "RATE_HZ",
    "SENTENCES",
    "VOICES",
    "BargeInScene",
    "Heard",
    "Labelled",
    "SpeechBank",
    "bursts",
    "echo_of",
    "espeak_missing_reason",
    "label_speech",
    "pink_noise",
    "play_scene",
    "scale_to_dbfs",
    "to_pcm",
    "white_noise",
]

RATE_HZ = 16_000
ESPEAK = shutil.which("espeak-ng")
_ESPEAK_RATE_HZ = 22_050
#: reference labelling: a 10 ms frame is speech within this many dB of the utterance's loudest frame
_LABEL_RANGE_DB = 40.0
_LABEL_FRAME = RATE_HZ // 100

VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland", "en-us+m5", "en-029")
SENTENCES = (
    "Wait, stop, I have a question about that.",
    "No, that is not what I asked for.",
    "Hold on a second please.",
    "Could you repeat the last part?",
    "Actually, let me tell you something else.",
    "Sorry, can I interrupt you here?",
    "Excuse me, that is wrong.",
    "Okay, okay, I understand, but listen.",
    "Please stop talking and listen to me.",
    "Hey, one moment.",
    "Right, and what about tomorrow morning?",
    "I think you misunderstood my question.",
)


def espeak_missing_reason() -> str | None:
    """Why real speech cannot be made here, or ``None`` when it can."""
    if ESPEAK is None:
        return "espeak-ng is not installed (apt-get install espeak-ng); real speech cannot be synthesised"
    return None


@dataclass(frozen=True)
class Labelled:
    """A clean utterance and where its speech is.

    Attributes:
        samples: float samples in [-1, 1] at 16 kHz.
        voiced: one flag per 10 ms frame, True where the reference labelling says speech.
        onset_ms: start of the first speech frame.
        end_ms: end of the last speech frame.
    """

    samples: np.ndarray
    voiced: np.ndarray
    onset_ms: float
    end_ms: float


def label_speech(samples: np.ndarray) -> Labelled:
    """Label a clean utterance by energy: the ground truth the detectors are scored against."""
    frames = len(samples) // _LABEL_FRAME
    power = np.square(samples[: frames * _LABEL_FRAME].reshape(frames, _LABEL_FRAME)).mean(axis=1)
    floor = power.max() * 10 ** (-_LABEL_RANGE_DB / 10)
    voiced = power > floor
    where = np.flatnonzero(voiced)
    return Labelled(samples, voiced, float(where[0] * 10), float((where[-1] + 1) * 10))


def _resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Band-limited resampling of a whole clip through its spectrum (an ideal low-pass)."""
    n_out = round(len(samples) * to_hz / from_hz)
    spectrum = np.fft.rfft(samples)[: n_out // 2 + 1]
    return np.fft.irfft(spectrum, n_out) * (n_out / len(samples))


class SpeechBank:
    """``espeak-ng`` utterances, each synthesised once and kept as 16 kHz float32 in ``cache_dir``.

    Args:
        cache_dir: a directory private to this test session or benchmark run.
    """

    def __init__(self, cache_dir: Path) -> None:
        self._dir = cache_dir
        self._memory: dict[str, Labelled] = {}

    def utterance(self, text: str, voice: str = "en-us", words_per_minute: int = 175) -> Labelled:
        """One utterance, trimmed to its labelled speech with 50 ms of silence either side.

        Raises:
            RuntimeError: ``espeak-ng`` is missing or failed.
        """
        key = hashlib.sha1(f"{voice}|{words_per_minute}|{text}".encode()).hexdigest()[:16]
        if key in self._memory:
            return self._memory[key]
        path = self._dir / f"{key}.npy"
        if path.exists():
            samples = np.load(path)
        else:
            samples = self._synthesise(text, voice, words_per_minute)
            np.save(path, samples)
        labelled = label_speech(samples)
        start = int(labelled.onset_ms) * RATE_HZ // 1000
        end = int(labelled.end_ms) * RATE_HZ // 1000
        margin = np.zeros(RATE_HZ // 20, dtype=samples.dtype)
        trimmed = label_speech(np.concatenate([margin, samples[start:end], margin]))
        self._memory[key] = trimmed
        return trimmed

    @staticmethod
    def _synthesise(text: str, voice: str, words_per_minute: int) -> np.ndarray:
        if ESPEAK is None:
            raise RuntimeError(espeak_missing_reason())
        wav = subprocess.run(
            [ESPEAK, "-v", voice, "-s", str(words_per_minute), "--stdout", text],
            check=True,
            capture_output=True,
            timeout=within(30),
        ).stdout
        with wave.open(io.BytesIO(wav)) as reader:
            rate = reader.getframerate()
            raw = reader.readframes(reader.getnframes())
        samples = np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
        return _resample(samples, rate, RATE_HZ).astype(np.float32)


def scale_to_dbfs(samples: np.ndarray, dbfs: float, voiced: np.ndarray | None = None) -> np.ndarray:
    """Scale so the RMS (over the voiced 10 ms frames, if given) is ``dbfs`` relative to full scale."""
    if voiced is None:
        rms = float(np.sqrt(np.mean(np.square(samples))))
    else:
        frames = samples[: len(voiced) * _LABEL_FRAME].reshape(len(voiced), _LABEL_FRAME)
        rms = float(np.sqrt(np.mean(np.square(frames[voiced]))))
    return samples * (10 ** (dbfs / 20) / max(rms, 1e-12))


def white_noise(n: int, dbfs: float, seed: int) -> np.ndarray:
    """Gaussian white noise of ``n`` samples at ``dbfs`` RMS."""
    return np.random.default_rng(seed).standard_normal(n) * 10 ** (dbfs / 20)


def pink_noise(n: int, dbfs: float, seed: int) -> np.ndarray:
    """Noise with a 1/f spectrum (3 dB per octave down), like a room's hum and traffic, at ``dbfs`` RMS."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    frequencies[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(frequencies), n)
    return scale_to_dbfs(noise, dbfs)


def bursts(n: int, count: int, max_ms: float, dbfs: float, seed: int) -> np.ndarray:
    """``count`` short sounds (clicks, knocks, coughs) under ``max_ms`` each, spread over ``n`` samples."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n)
    slot = n // count
    for index in range(count):
        length = int(rng.uniform(20, max_ms) * RATE_HZ / 1000)
        envelope = np.exp(-np.linspace(0, rng.uniform(2, 6), length))
        # a cough is broadband with a low-mid hump: noise through a one-pole low-pass
        noise = rng.standard_normal(length)
        shaped = np.convolve(noise, [0.5, 0.3, 0.2], mode="same") * envelope
        start = index * slot + int(rng.uniform(0.2, 0.6) * slot)
        out[start : start + length] += scale_to_dbfs(shaped, dbfs)
    return out


def echo_of(reply: np.ndarray, gain_db: float, delay_ms: float, seed: int) -> np.ndarray:
    """The reply as a phone's microphone hears it from its own speaker.

    Delayed by ``delay_ms`` (playout buffer and the air), band-limited to a small speaker's 300-3 400 Hz,
    softly clipped, with a few room reflections in the next 60 ms; its RMS is ``gain_db`` relative to
    the reply's.
    """
    rng = np.random.default_rng(seed)
    taps = np.zeros(RATE_HZ * 60 // 1000)
    taps[0] = 1.0
    for _ in range(6):
        taps[rng.integers(16, len(taps))] += rng.uniform(-0.4, 0.4)
    spectrum = np.fft.rfft(np.concatenate([reply, np.zeros(len(taps))]))
    frequencies = np.fft.rfftfreq(len(reply) + len(taps), 1 / RATE_HZ)
    spectrum *= (frequencies > 300) & (frequencies < 3_400)
    spectrum *= np.fft.rfft(taps, len(reply) + len(taps))
    wet = np.tanh(2.0 * np.fft.irfft(spectrum, len(reply) + len(taps))) / 2.0
    rms_in = float(np.sqrt(np.mean(np.square(reply))))
    rms_out = float(np.sqrt(np.mean(np.square(wet))))
    wet *= 10 ** (gain_db / 20) * rms_in / max(rms_out, 1e-12)
    delay = int(delay_ms * RATE_HZ / 1000)
    return np.concatenate([np.zeros(delay), wet])


def to_pcm(samples: np.ndarray) -> bytes:
    """Float samples to PCM16 little-endian, clipped at full scale."""
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()


@dataclass(frozen=True)
class BargeInScene:
    """A session's microphone while a reply plays, and what the proxy sent.

    Attributes:
        mic: the microphone: echo of the reply, noise, and perhaps the client's own speech.
        reply: the reply audio as sent to the client, at ``RATE_HZ``.
        reply_start_ms: when (input clock) the reply started being sent.
        speech_onset_ms: labelled onset of the client's speech, or None if it does not speak.
        speech_end_ms: labelled end of the client's speech, or None.
        burst: the reply sent at once (True) or paced in 200 ms pieces as it plays (False).
    """

    mic: np.ndarray
    reply: np.ndarray
    reply_start_ms: int
    speech_onset_ms: float | None = None
    speech_end_ms: float | None = None
    burst: bool = False


@dataclass
class Heard:
    """What a :class:`VoiceActivity` returned over a scene, each event with the input clock (ms) then."""

    events: list[tuple[float, VoiceEvent]] = field(default_factory=list)

    def of(self, kind: type) -> list[tuple[float, VoiceEvent]]:
        """The events of one class, in order."""
        return [(at, event) for at, event in self.events if isinstance(event, kind)]


def play_scene(activity: VoiceActivity, scene: BargeInScene, step_bytes: int = 640) -> Heard:
    """Feed a scene as a session would: microphone in ``step_bytes`` pieces, the reply as it is sent.

    The reply goes out at its start and then (unless in one burst) 200 ms at a time as it plays,
    each piece at exactly the same point of the input clock whatever ``step_bytes`` is; it ends when
    all of it has been sent. The clock is the count of microphone samples.
    """
    pcm = to_pcm(scene.mic)
    reply_pcm = to_pcm(scene.reply)
    start_byte = scene.reply_start_ms * RATE_HZ // 1000 * 2
    piece = RATE_HZ // 5 * 2
    sends = [start_byte] if scene.burst else list(range(start_byte, start_byte + len(reply_pcm), piece))
    cuts = sorted({*range(0, len(pcm), step_bytes), *(at for at in sends if at < len(pcm)), len(pcm)})
    sent = 0
    heard = Heard()
    for offset, end in itertools.pairwise(cuts):
        if offset in sends:
            if sent == 0:
                activity.reply_started()
            due = len(reply_pcm) if scene.burst else min(len(reply_pcm), sent + piece)
            activity.reply_audio(reply_pcm[sent:due], RATE_HZ)
            sent = due
            if sent == len(reply_pcm):
                activity.reply_ended()
        now_ms = end // 2 * 1000 / RATE_HZ
        heard.events.extend((now_ms, event) for event in activity.feed_input(pcm[offset:end]))
    return heard
