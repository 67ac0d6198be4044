"""The simulator's stand-in model and its audio plumbing: no network, no clock, no asyncio.

Owns: the deterministic model (sessions, a token count, the audio prefilled since the last reply)
and its replies (text ``Turn N: heard H s of audio, V s of it sound.`` split on word boundaries
over the chunks, audio = what it heard, at the version's rate and chunk length,
``UPSTREAM_PROTOCOL.md`` sections 4.2 and 7), plus the upstream's audio handling of stream
messages: lenient base64, WAV merge under the first message's format, with the error texts the
upstream shows (section 8: raw PCM fails only at the merge).

Must not: know about requests, uids or turns; ``state.py`` drives it.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from asgi_audio_proxy.audio.resample import Resampler
from asgi_audio_proxy.audio.wav import (
    CLIENT_SAMPLE_RATE_HZ,
    AudioFormatError,
    b64decode_strict,
    pcm16_to_wav,
    wav_to_pcm16,
)
from asgi_audio_proxy.simulator.vad import voiced_seconds

__all__ = [
    "REPLY_FORMAT",
    "ReplyChunk",
    "SimulatedModel",
    "SimulatorVersion",
    "TurnAudioMissing",
    "build_reply",
    "decode_base64",
    "merge_chunks",
    "pcm_to_float",
]

SimulatorVersion = Literal["2.6", "4.5"]

#: reply audio per version: (sample rate, samples per chunk) (section 4.2)
REPLY_FORMAT: dict[str, tuple[int, int]] = {"2.6": (24_000, 12_800), "4.5": (16_000, 16_000)}
_TOKENS_PER_AUDIO_S = 25
_SYSTEM_PROMPT_TOKENS = 64


class TurnAudioMissing(Exception):
    """The turn's accepted audio is empty (the echo guard ate it): no echo can be built."""


@dataclass(frozen=True, slots=True)
class ReplyChunk:
    """One reply message: a complete WAV file and its text delta."""

    wav: bytes
    text: str


@dataclass(slots=True)
class SimulatedModel:
    """The stand-in model: sessions, a token count, and the audio prefilled since the last reply."""

    session_id: int | None = None
    turns: int = 0
    tokens: float = 0.0
    has_cache: bool = False
    heard: list[np.ndarray] = field(default_factory=list)

    def prefill(self, session_id: int, samples: np.ndarray | None) -> None:
        if session_id != self.session_id:
            self.session_id, self.turns, self.tokens, self.has_cache = session_id, 0, 0.0, False
            self.heard = []
        if samples is None:  # the system prompt
            self.tokens += _SYSTEM_PROMPT_TOKENS
        else:
            self.heard.append(samples)
            self.tokens += len(samples) / CLIENT_SAMPLE_RATE_HZ * _TOKENS_PER_AUDIO_S
        self.has_cache = True

    def generate(self) -> tuple[int, np.ndarray] | None:
        """Start a reply: (turn number, heard audio), or ``None`` if nothing was ever prefilled."""
        if not self.has_cache:
            return None
        self.turns += 1
        heard = np.concatenate(self.heard) if self.heard else np.zeros(0, np.float32)
        self.heard = []
        return self.turns, heard


def decode_base64(text: Any) -> bytes:
    """Decode base64 as the upstream does: strictly first, else skipping stray characters.

    The upstream's ``base64.b64decode`` drops non-alphabet characters and fails only on bad
    length or padding (so a payload of garbage may decode to a few bytes and fail later, at the
    WAV merge, as there).

    Raises:
        AudioFormatError: undecodable even leniently (the upstream's ``binascii`` text).
    """
    if isinstance(text, str):
        try:
            return b64decode_strict(text)
        except AudioFormatError:
            pass
    try:
        return base64.b64decode(text)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise AudioFormatError(str(exc)) from exc


def _parse_chunk(data: bytes) -> tuple[bytes, int, int]:
    """PCM, rate and channels of one message, failing with the texts Python's ``wave`` uses."""
    if data[:4] != b"RIFF":
        raise AudioFormatError("file does not start with RIFF id")
    if data[8:12] != b"WAVE":
        raise AudioFormatError("not a WAVE file")
    audio = wav_to_pcm16(data)
    return audio.pcm, audio.sample_rate_hz, audio.channels


def merge_chunks(chunks: list[bytes]) -> tuple[bytes, int, int]:
    """Concatenate messages under the first one's format, as the upstream's ``merge_wav_files``."""
    if not chunks:
        raise TurnAudioMissing("list index out of range")
    pcm, rate, channels = _parse_chunk(chunks[0])
    rest = [_parse_chunk(c)[0] for c in chunks[1:]]
    return b"".join([pcm, *rest]), rate, channels


def pcm_to_float(pcm: bytes, channels: int) -> np.ndarray:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples[: len(samples) - len(samples) % channels]
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples


def _split_words(text: str, parts: int) -> list[str]:
    """Split ``text`` into ``parts`` deltas on word boundaries; their concatenation is ``text``."""
    cuts = [0, *(m.start() for m in re.finditer(r"\s+\S", text)), len(text)]
    words = len(cuts) - 1
    bounds = [cuts[(i * words) // parts] for i in range(parts)] + [len(text)]
    return [text[bounds[i] : bounds[i + 1]] for i in range(parts)]


def build_reply(
    version: SimulatorVersion, turn: int, heard: np.ndarray, reply_chunks: int | None
) -> tuple[str, float, list[ReplyChunk]]:
    """The stand-in model's reply to ``heard`` (float samples, 16 kHz): text, sound seconds, chunks.

    The audio is what it heard, resampled to 24 kHz for 2.6 or kept at 16 kHz for 4.5, cut into
    the version's chunk length. ``reply_chunks`` ``None`` plays all of it back (at least one
    chunk); a number gives exactly that many full chunks, padded with silence.
    """
    rate, chunk_samples = REPLY_FORMAT[version]
    voiced = voiced_seconds(heard)
    text = (
        f"Turn {turn}: heard {len(heard) / CLIENT_SAMPLE_RATE_HZ:.1f} s of audio, "
        f"{voiced:.1f} s of it sound."
    )
    pcm = np.clip(np.rint(heard * 32768.0), -32768, 32767).astype("<i2").tobytes()
    if rate != CLIENT_SAMPLE_RATE_HZ and pcm:
        resampler = Resampler(CLIENT_SAMPLE_RATE_HZ, rate)
        delay = round(resampler.delay_s * rate)
        wanted = len(heard) * rate // CLIENT_SAMPLE_RATE_HZ
        pcm = (resampler.feed(pcm) + resampler.flush())[2 * delay : 2 * (delay + wanted)]
    samples = len(pcm) // 2
    count = reply_chunks if reply_chunks is not None else max(1, math.ceil(samples / chunk_samples))
    if reply_chunks is not None:
        total = 2 * count * chunk_samples
        pcm = pcm[:total].ljust(total, b"\0")
    elif not pcm:
        pcm = bytes(2 * chunk_samples)
    step = 2 * chunk_samples
    pieces = [pcm[i * step : (i + 1) * step] for i in range(count)]
    texts = _split_words(text, count)
    chunks = [ReplyChunk(pcm16_to_wav(p, rate), t) for p, t in zip(pieces, texts, strict=True)]
    return text, voiced, chunks
