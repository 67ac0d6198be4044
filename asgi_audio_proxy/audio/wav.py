"""WAV framing and strict base64: PCM16 wrapped in and read out of a 44-byte RIFF header.

Owns: the audio constants the proxy is built around (16 kHz PCM16 mono, 200 ms messages:
``UPSTREAM_PROTOCOL.md`` sections 3.2 and 5.3), writing a WAV header in memory, reading any
PCM16 WAV whatever its header says (section 4.2) and strict base64. Must not: import asyncio or
a network library, or read a clock.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

__all__ = [
    "CLIENT_SAMPLE_RATE_HZ",
    "MESSAGE_BYTES",
    "MESSAGE_SAMPLES",
    "AudioFormatError",
    "WavAudio",
    "b64decode_strict",
    "pcm16_to_wav",
    "wav_to_pcm16",
]

#: the client's and the upstream's input format: PCM16 mono at this rate
CLIENT_SAMPLE_RATE_HZ = 16_000
#: the upstream assumes 200 ms messages (section 5.3): 3 200 samples
MESSAGE_SAMPLES = 3_200
MESSAGE_BYTES = MESSAGE_SAMPLES * 2
_WAV_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


class AudioFormatError(ValueError):
    """Bytes that are not the audio they claim to be."""


@dataclass(frozen=True, slots=True)
class WavAudio:
    """PCM16 samples read out of a WAV file."""

    pcm: bytes
    sample_rate_hz: int
    channels: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / (2 * self.channels * self.sample_rate_hz)


def pcm16_to_wav(pcm: bytes, sample_rate_hz: int = CLIENT_SAMPLE_RATE_HZ, channels: int = 1) -> bytes:
    """Wrap PCM16 little-endian samples in a canonical 44-byte RIFF/WAVE header.

    Raises:
        AudioFormatError: if ``pcm`` is not a whole number of frames.
    """
    block_align = 2 * channels
    if len(pcm) % block_align:
        raise AudioFormatError(f"PCM length {len(pcm)} is not a multiple of {block_align}")
    header = _WAV_HEADER.pack(
        b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, channels, sample_rate_hz,
        sample_rate_hz * block_align, block_align, 16, b"data", len(pcm),
    )
    return header + pcm


def wav_to_pcm16(wav: bytes) -> WavAudio:
    """Read a PCM16 WAV file, walking its RIFF chunks rather than assuming 44 bytes.

    A ``data`` size larger than what is there (a streaming writer's placeholder) is read as
    "up to the end".

    Raises:
        AudioFormatError: not RIFF/WAVE, not 16-bit PCM, or no ``fmt``/``data`` chunk.
    """
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise AudioFormatError("not a RIFF/WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(wav):
        chunk_id, size = struct.unpack_from("<4sI", wav, pos)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(wav):
                raise AudioFormatError("truncated fmt chunk")
            fmt = struct.unpack_from("<HHIIHH", wav, body)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError("data chunk before fmt chunk")
            tag, channels, rate, _, _, bits = fmt
            # 0xFFFE is WAVE_FORMAT_EXTENSIBLE, which libsndfile writes for some files
            if tag not in (1, 0xFFFE) or bits != 16 or channels < 1 or rate <= 0:
                raise AudioFormatError(f"need PCM 16-bit, got format {tag}, {bits} bits")
            end = min(body + size, len(wav))
            end -= (end - body) % (2 * channels)
            return WavAudio(wav[body:end], rate, channels)
        pos = body + size + (size & 1)
    raise AudioFormatError("no data chunk")


def b64decode_strict(text: str) -> bytes:
    """Decode base64, raising :class:`AudioFormatError` instead of ``binascii.Error``."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AudioFormatError(f"invalid base64: {exc}") from exc
