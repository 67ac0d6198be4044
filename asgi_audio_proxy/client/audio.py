"""What the test client says: generated tones, WAV files made ready to send, and the reply WAV.

Owns: the pure audio side of ``asgi-audio-proxy client``: the speech-like test signal of the
``generated`` mode, any PCM16 WAV file turned into the proxy's input format (16 kHz mono PCM16,
channels mixed down, resampled with the package's anti-aliased :class:`~asgi_audio_proxy.audio.Resampler`),
cutting PCM into fixed-length frames, and the level check that tells speech from silence.
Must not: import asyncio or a network library, or read a clock (the client's edge is ``talk.py``).
"""

from __future__ import annotations

import math

import numpy as np

from ..audio.resample import Resampler
from ..audio.wav import CLIENT_SAMPLE_RATE_HZ, wav_to_pcm16

__all__ = [
    "FRAME_BYTES",
    "FRAME_S",
    "SPEECH_RMS",
    "generated_utterance",
    "is_loud",
    "mix_to_16k_mono",
    "silence",
    "split_frames",
    "wav_file_to_16k_mono",
]

#: the client sends 50 ms frames: small enough for a fine latency clock, few enough messages
FRAME_S = 0.05
FRAME_BYTES = round(CLIENT_SAMPLE_RATE_HZ * FRAME_S) * 2
#: RMS (full scale 1.0) from which a frame counts as the user talking: the upstream VAD's -40 dBFS
SPEECH_RMS = 0.01
#: the generated signal's syllables: (frequency / base, share of the tone time)
_SYLLABLES = ((1.0, 0.5), (1.25, 0.25), (1.5, 0.25))
_SYLLABLE_GAP_S = 0.06


def silence(seconds: float) -> bytes:
    """``seconds`` of 16 kHz PCM16 silence."""
    return bytes(2 * round(CLIENT_SAMPLE_RATE_HZ * seconds))


def generated_utterance(seconds: float = 1.2, base_hz: float = 440.0, amplitude: float = 0.3) -> bytes:
    """One turn of the ``generated`` mode: a short speech-like burst, 16 kHz PCM16.

    Three "syllables" in a row, rising like "one-two-three": ``base_hz`` for half the tone time,
    then 5/4 and 3/2 of it for a quarter each, with 10 ms fades (no clicks) and 60 ms gaps. Loud
    enough for the upstream's VAD, short enough to be one utterance, and ``base_hz`` stays the
    strongest frequency, so a reply can be checked by its spectrum.

    Args:
        seconds: length of the burst.
        base_hz: the first and strongest tone.
        amplitude: peak level, full scale 1.0.

    Returns:
        PCM16 little-endian mono at 16 kHz.

    Raises:
        ValueError: a non-positive length or frequency, or an amplitude outside (0, 1].
    """
    if seconds <= 0 or base_hz <= 0 or not 0 < amplitude <= 1:
        raise ValueError(f"invalid seconds={seconds!r}, base_hz={base_hz!r} or amplitude={amplitude!r}")
    rate = CLIENT_SAMPLE_RATE_HZ
    gap = round(_SYLLABLE_GAP_S * rate)
    tone_total = max(len(_SYLLABLES) * 4, round(seconds * rate) - gap * (len(_SYLLABLES) - 1))
    parts: list[np.ndarray] = []
    for i, (ratio, share) in enumerate(_SYLLABLES):
        length = round(tone_total * share)
        t = np.arange(length) / rate
        parts.append(amplitude * _fades(length) * np.sin(2 * math.pi * base_hz * ratio * t))
        if i < len(_SYLLABLES) - 1:
            parts.append(np.zeros(gap))
    return _to_pcm16(np.concatenate(parts))


def _fades(length: int) -> np.ndarray:
    ramp = np.ones(length)
    fade = min(round(0.01 * CLIENT_SAMPLE_RATE_HZ), length // 2)
    if fade:
        ramp[:fade] = np.linspace(0, 1, fade)
        ramp[-fade:] = np.linspace(1, 0, fade)
    return ramp


def mix_to_16k_mono(pcm: bytes, sample_rate_hz: int, channels: int) -> bytes:
    """Mix interleaved PCM16 down to mono (the channels' mean) and resample it to 16 kHz.

    Raises:
        ValueError: a non-positive rate or channel count.
    """
    if sample_rate_hz <= 0 or channels < 1:
        raise ValueError(f"invalid sample_rate_hz={sample_rate_hz!r} or channels={channels!r}")
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % (2 * channels)], dtype="<i2")
    if channels > 1:
        mono = samples.reshape(-1, channels).astype(np.float64).mean(axis=1)
        samples = np.clip(np.rint(mono), -32768, 32767).astype("<i2")
    mono_pcm = samples.astype("<i2").tobytes()
    if sample_rate_hz == CLIENT_SAMPLE_RATE_HZ:
        return mono_pcm
    resampler = Resampler(sample_rate_hz, CLIENT_SAMPLE_RATE_HZ)
    # the filter delays its output; cut that lead-in so the file starts where it starts
    delay = round(resampler.delay_s * CLIENT_SAMPLE_RATE_HZ)
    wanted = len(samples) * CLIENT_SAMPLE_RATE_HZ // sample_rate_hz
    out = resampler.feed(mono_pcm) + resampler.flush()
    return out[2 * delay : 2 * (delay + wanted)]


def wav_file_to_16k_mono(wav: bytes) -> bytes:
    """A PCM16 WAV file's audio as 16 kHz mono PCM16, whatever its rate and channel count.

    Raises:
        asgi_audio_proxy.audio.AudioFormatError: not a 16-bit PCM WAV file.
    """
    audio = wav_to_pcm16(wav)
    return mix_to_16k_mono(audio.pcm, audio.sample_rate_hz, audio.channels)


def split_frames(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    """Cut PCM16 into frames of ``frame_bytes``; the last one is padded with silence."""
    if frame_bytes <= 0 or frame_bytes % 2:
        raise ValueError(f"frame_bytes must be a positive even number, got {frame_bytes}")
    frames = [pcm[i : i + frame_bytes] for i in range(0, len(pcm), frame_bytes)]
    if frames and len(frames[-1]) < frame_bytes:
        frames[-1] = frames[-1].ljust(frame_bytes, b"\0")
    return frames


def is_loud(pcm: bytes, threshold_rms: float = SPEECH_RMS) -> bool:
    """Whether a PCM16 frame is as loud as speech (RMS at least ``threshold_rms`` of full scale)."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    if samples.size == 0:
        return False
    rms = math.sqrt(float(np.mean(np.square(samples.astype(np.float64))))) / 32768.0
    return rms >= threshold_rms


def _to_pcm16(samples: np.ndarray) -> bytes:
    return np.clip(np.rint(samples * 32767.0), -32768, 32767).astype("<i2").tobytes()
