"""Realtime audio on the wire: base64 PCM16 24 kHz, or G.711 mu-law / A-law 8 kHz.

Owns: decoding an ``input_audio_buffer.append``'s ``audio`` into PCM16 and its rate (an odd
trailing byte of PCM16 carried to the next append, as every stream of this package does), and
encoding reply PCM16 into base64 deltas of at most :data:`DELTA_MS` each. Must not: know events,
ids or the session.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from ...audio.g711 import alaw_to_pcm16, pcm16_to_alaw, pcm16_to_ulaw, ulaw_to_pcm16
from ...audio.resample import Resampler
from .session_config import FORMAT_RATES_HZ

__all__ = ["DELTA_MS", "InputDecoder", "OutputEncoder", "decode_whole", "pcm_ms", "peak", "strict_b64decode"]

#: longest reply audio delta: clients play deltas as they come, and a cut loses at most one
DELTA_MS = 100
#: what a PCM file starts with: audio sent as a WAV file instead of raw samples
_WAV_MAGIC = b"RIFF"


def strict_b64decode(text: str) -> bytes:
    """``base64.b64decode(text, validate=True)``, through ``binascii``'s strict mode first
    (without the standard library's regular expression: 2 us less per 20 ms append).

    Raises:
        ValueError: ``text`` is not base64 (the standard library's message).
    """
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except ValueError:  # read again for what b64decode accepts and strict mode does not, or its error
        pass
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64 ({exc})") from exc


def pcm_ms(nbytes: int, rate_hz: int) -> float:
    """How long ``nbytes`` of PCM16 mono at ``rate_hz`` plays, in milliseconds."""
    return nbytes / 2 / rate_hz * 1000.0


class InputDecoder:
    """Turns appended ``audio`` strings into PCM16, one per connection (it carries odd bytes)."""

    def __init__(self) -> None:
        self._odd = b""

    def decode(self, audio: str, fmt: str) -> tuple[bytes, int]:
        """PCM16 mono and its rate for one append in format ``fmt``.

        Raises:
            ValueError: ``audio`` is not base64, or is a WAV file rather than raw samples.
        """
        raw = strict_b64decode(audio)
        if raw[:4] == _WAV_MAGIC and raw[8:12] == b"WAVE":
            raise ValueError("a WAV file, not raw samples")
        rate = FORMAT_RATES_HZ[fmt]
        if fmt == "audio/pcmu":
            return ulaw_to_pcm16(raw), rate
        if fmt == "audio/pcma":
            return alaw_to_pcm16(raw), rate
        if self._odd:
            raw, self._odd = self._odd + raw, b""
        if len(raw) % 2:
            raw, self._odd = raw[:-1], raw[-1:]
        return raw, rate

    def reset(self) -> None:
        """Forget a carried byte (the buffer was cleared or the format changed)."""
        self._odd = b""


def decode_whole(audio: list[str], fmt: str) -> list[tuple[bytes, int, int]]:
    """Whole pieces of audio (a conversation item's) as PCM16, its rate and its size on the wire.

    Raises:
        ValueError: a piece is not base64, or is a WAV file.
    """
    decoder, out = InputDecoder(), []
    for data in audio:
        pcm, rate = decoder.decode(data, fmt)
        if pcm:
            out.append((pcm, rate, len(data) * 3 // 4))
    return out


def peak(pcm: bytes) -> int:
    """The loudest sample of PCM16 (little-endian), taken on every append: numpy's min and max,
    a few microseconds where Python's over an ``array`` took some 60 per 20 ms."""
    if len(pcm) < 2:
        return 0
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
    return max(int(samples.max()), -int(samples.min()))


class OutputEncoder:
    """Turns reply PCM16 into base64 deltas in the output format, one per connection.

    The session resamples reply audio to the dialect's output rate; when a ``session.update``
    changes the format while audio is under way, a piece may still come at the old rate, and
    is resampled here (a resampler kept, so pieces join without clicks).
    """

    def __init__(self) -> None:
        self._resampler: Resampler | None = None

    def encode(self, pcm: bytes, rate_hz: int, fmt: str) -> tuple[list[str], float]:
        """``pcm`` at ``rate_hz`` as deltas in ``fmt``, and how many milliseconds they play."""
        out_rate_hz = FORMAT_RATES_HZ[fmt]
        if rate_hz != out_rate_hz:
            resampler = self._resampler
            if resampler is None or (resampler.in_rate_hz, resampler.out_rate_hz) != (rate_hz, out_rate_hz):
                resampler = self._resampler = Resampler(rate_hz, out_rate_hz)
            pcm = resampler.feed(pcm)
        return _deltas(pcm, out_rate_hz, fmt), pcm_ms(len(pcm), out_rate_hz)


def _deltas(pcm: bytes, rate_hz: int, fmt: str) -> list[str]:
    step = rate_hz * DELTA_MS // 1000 * 2
    deltas = []
    for start in range(0, len(pcm), step):
        piece = pcm[start:start + step]
        if fmt == "audio/pcmu":
            piece = pcm16_to_ulaw(piece)
        elif fmt == "audio/pcma":
            piece = pcm16_to_alaw(piece)
        deltas.append(base64.b64encode(piece).decode("ascii"))
    return deltas
