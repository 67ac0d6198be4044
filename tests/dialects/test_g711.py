"""G.711 μ-law and A-law: exact against the reference codes, lossless where the codec is."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from asgi_audio_proxy.audio.g711 import alaw_to_pcm16, pcm16_to_alaw, pcm16_to_ulaw, ulaw_to_pcm16
from tests.signals import tone

EVERY_SAMPLE = np.arange(-32768, 32768, dtype="<i2").tobytes()
EVERY_CODE = bytes(range(256))
Codec = Callable[[bytes], bytes]


def _pcm(*samples: int) -> bytes:
    return np.array(samples, dtype="<i2").tobytes()


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int64)


def _audioop() -> ModuleType:
    """The reference: CPython's ``audioop`` (deprecated since 3.11, gone in 3.13 unless the
    ``audioop-lts`` package puts it back)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # only this import; the suite keeps errors
        try:
            return importlib.import_module("audioop")
        except ImportError:
            pytest.skip("no audioop to compare with (Python 3.13+ without audioop-lts)")


def test_ulaw_matches_the_reference_for_every_sample_and_every_code() -> None:
    audioop = _audioop()
    assert pcm16_to_ulaw(EVERY_SAMPLE) == audioop.lin2ulaw(EVERY_SAMPLE, 2)
    assert ulaw_to_pcm16(EVERY_CODE) == audioop.ulaw2lin(EVERY_CODE, 2)


def test_alaw_matches_the_reference_for_every_sample_and_every_code() -> None:
    audioop = _audioop()
    assert pcm16_to_alaw(EVERY_SAMPLE) == audioop.lin2alaw(EVERY_SAMPLE, 2)
    assert alaw_to_pcm16(EVERY_CODE) == audioop.alaw2lin(EVERY_CODE, 2)


def test_golden_codes_from_g711_tables() -> None:
    # silence, the smallest negative step, and both clipping ends
    assert pcm16_to_ulaw(_pcm(0, -1, 32767, -32768)) == bytes.fromhex("ff7e8000")
    assert pcm16_to_alaw(_pcm(0, -1, 32767, -32768)) == bytes.fromhex("d555aa2a")
    # the largest μ-law magnitude is 32124, the largest A-law one 32256; A-law has no zero
    assert ulaw_to_pcm16(bytes([0x00, 0x80, 0xFF, 0x7F])) == _pcm(-32124, 32124, 0, 0)
    assert alaw_to_pcm16(bytes([0x2A, 0xAA, 0xD5, 0x55])) == _pcm(-32256, 32256, 8, -8)


def test_every_code_survives_a_round_trip() -> None:
    # μ-law has two zeros (0xFF and 0x7F); the encoder writes positive zero for both
    ulaw = pcm16_to_ulaw(ulaw_to_pcm16(EVERY_CODE))
    assert [c for c, back in zip(EVERY_CODE, ulaw, strict=True) if c != back] == [0x7F]
    assert pcm16_to_alaw(alaw_to_pcm16(EVERY_CODE)) == EVERY_CODE


@pytest.mark.parametrize(("encode", "decode"), [(pcm16_to_ulaw, ulaw_to_pcm16),
                                                 (pcm16_to_alaw, alaw_to_pcm16)])
def test_a_loud_tone_keeps_g711s_signal_to_noise_ratio(encode: Codec, decode: Codec) -> None:
    pcm = tone(440, 1.0, 8_000, amplitude=0.5)
    error = _samples(decode(encode(pcm))) - _samples(pcm)
    snr_db = 10 * np.log10(np.sum(_samples(pcm) ** 2) / np.sum(error**2))
    assert snr_db > 35  # G.711's logarithmic steps give about 38 dB across its range


@pytest.mark.parametrize("encode", [pcm16_to_ulaw, pcm16_to_alaw])
def test_half_a_sample_is_refused(encode: Codec) -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        encode(b"\x00\x01\x02")


@pytest.mark.parametrize("convert", [pcm16_to_ulaw, pcm16_to_alaw, ulaw_to_pcm16, alaw_to_pcm16])
def test_nothing_in_nothing_out(convert: Codec) -> None:
    assert convert(b"") == b""
