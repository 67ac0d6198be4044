"""Pure audio primitives: PCM16 checks, the upstream chunk buffer, WAV framing, base64, resampling.

Owns: turning client PCM into the 200 ms WAV messages the upstream is built around
(``UPSTREAM_PROTOCOL.md`` sections 3.2 and 5.3), reading reply WAVs whatever their header says
(section 4.2), and the stateful anti-aliased resampler that brings 24 kHz replies to 16 kHz
(section 7). Must not: import asyncio or a network library, or read a clock.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "CLIENT_SAMPLE_RATE_HZ",
    "MESSAGE_BYTES",
    "MESSAGE_SAMPLES",
    "AudioFormatError",
    "ChunkBuffer",
    "Resampler",
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


class ChunkBuffer:
    """Gathers client PCM and releases it as exactly-200 ms upstream messages.

    Frames of any size go in; an odd trailing byte simply waits for the next frame. Audio is
    released once ``release_messages`` whole messages (``chunk_duration`` seconds) have gathered,
    so ``chunk_duration`` sets how long audio waits, never the message size (section 5.3).

    Overflow policy: none here; the session bounds what it feeds (``max_buffered_seconds``).

    Args:
        release_messages: how many 200 ms messages to gather before releasing them.
    """

    def __init__(self, release_messages: int = 5) -> None:
        if release_messages < 1:
            raise ValueError(f"release_messages must be >= 1, got {release_messages}")
        self._release_bytes = release_messages * MESSAGE_BYTES
        self._pending = bytearray()

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def feed(self, pcm: bytes | bytearray | memoryview) -> list[bytes]:
        """Add client PCM; return the messages now due (possibly none)."""
        self._pending += pcm
        if len(self._pending) < self._release_bytes:
            return []
        due = len(self._pending) - len(self._pending) % self._release_bytes
        return self._take(due)

    def flush(self) -> list[bytes]:
        """Release every whole message pending now, early; less than one message stays."""
        return self._take(len(self._pending) - len(self._pending) % MESSAGE_BYTES)

    def clear(self) -> int:
        """Drop what is pending; return how many bytes were dropped."""
        dropped = len(self._pending)
        self._pending.clear()
        return dropped

    def _take(self, nbytes: int) -> list[bytes]:
        view = memoryview(self._pending)
        try:
            out = [bytes(view[i : i + MESSAGE_BYTES]) for i in range(0, nbytes, MESSAGE_BYTES)]
        finally:
            view.release()
        del self._pending[:nbytes]
        return out


#: Kaiser design targets: 80 dB stop band; pass band to 7/16 of the lower Nyquist (7 kHz at 16 kHz)
_STOPBAND_DB = 80.0
_PASS_FRACTION = 0.4375


class Resampler:
    """Stateful windowed-sinc polyphase resampler for PCM16 mono, one per stream.

    History is kept across :meth:`feed` calls, so chunked input gives the same output as one
    call (no clicks at chunk boundaries). Equal rates pass through untouched.

    Args:
        in_rate_hz: rate of what is fed.
        out_rate_hz: rate of what comes out.
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int) -> None:
        if in_rate_hz <= 0 or out_rate_hz <= 0:
            raise ValueError(f"rates must be positive, got {in_rate_hz} -> {out_rate_hz}")
        self.in_rate_hz, self.out_rate_hz = in_rate_hz, out_rate_hz
        ratio = Fraction(out_rate_hz, in_rate_hz)
        self._up, self._down = ratio.numerator, ratio.denominator
        self._passthrough = ratio == 1
        self._phases, self._taps = _design_polyphase(in_rate_hz, out_rate_hz, self._up)
        self._history = np.zeros(self._taps - 1, dtype=np.float32)
        self._consumed = 0  # input samples fed so far
        self._produced = 0  # output samples emitted so far
        self._odd = b""

    @property
    def delay_s(self) -> float:
        """Group delay the filter adds, in seconds."""
        return 0.0 if self._passthrough else (self._taps * self._up - 1) / 2 / (self.in_rate_hz * self._up)

    def feed(self, pcm: bytes) -> bytes:
        """Resample the next piece of the stream; returns PCM16 at ``out_rate_hz``."""
        if self._odd:
            pcm, self._odd = self._odd + pcm, b""
        if len(pcm) % 2:
            pcm, self._odd = pcm[:-1], pcm[-1:]
        if self._passthrough:
            return bytes(pcm)
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        return self._run(x)

    def flush(self) -> bytes:
        """Push out the filter's tail (call once, at the end of the stream)."""
        if self._passthrough:
            return b""
        return self._run(np.zeros(self._taps, dtype=np.float32))

    def _run(self, x: np.ndarray) -> bytes:
        buf = np.concatenate((self._history, x))
        offset = self._consumed - (self._taps - 1)  # absolute input index of buf[0]
        self._consumed += len(x)
        # output j uses input samples up to index (j * down) // up
        end = -(-(self._consumed * self._up) // self._down)  # first j needing unseen input
        start = self._produced
        y = np.empty(max(end - start, 0), dtype=np.float32)
        windows = sliding_window_view(buf, self._taps)
        for phase in range(self._up):
            # outputs of one phase are `up` apart; their windows are `down` input samples apart
            first = _first_with_phase(start, phase, self._up, self._down)
            if first >= end:
                continue
            newest = (first * self._down) // self._up - offset
            rows = windows[newest - self._taps + 1 :: self._down][: len(range(first, end, self._up))]
            y[first - start :: self._up] = rows @ self._phases[phase]
        self._produced = end
        self._history = buf[len(buf) - (self._taps - 1) :]
        return np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()


def _first_with_phase(start: int, phase: int, up: int, down: int) -> int:
    """Smallest j >= start with (j * down) % up == phase."""
    for j in range(start, start + up):
        if (j * down) % up == phase:
            return j
    return start + up  # unreachable while gcd(up, down) == 1 covers every phase


def _design_polyphase(in_rate_hz: int, out_rate_hz: int, up: int) -> tuple[np.ndarray, int]:
    """Kaiser-windowed sinc prototype split into ``up`` reversed phases of equal length."""
    nyquist = min(in_rate_hz, out_rate_hz) / 2
    pass_hz, stop_hz = _PASS_FRACTION * 2 * nyquist, nyquist
    fs = in_rate_hz * up
    width = 2 * math.pi * (stop_hz - pass_hz) / fs
    length = math.ceil((_STOPBAND_DB - 7.95) / (2.285 * width)) + 1
    taps = -(-length // up)
    n = np.arange(taps * up) - (taps * up - 1) / 2
    cutoff = (pass_hz + stop_hz) / 2 / fs  # cycles per sample
    beta = 0.1102 * (_STOPBAND_DB - 8.7)
    proto = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps * up, beta) * up
    # phase p holds h[p + i*up]; reversed so a window (oldest first) dots with it directly
    phases = np.stack([proto[p::up][::-1] for p in range(up)]).astype(np.float32)
    return phases, taps
