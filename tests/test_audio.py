"""The pure audio core: buffering (section 5.3), WAV framing (3.2, 4.2), resampling (7)."""

from __future__ import annotations

import base64
import itertools
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_audio_proxy.audio import (
    MESSAGE_BYTES,
    AudioFormatError,
    ChunkBuffer,
    Resampler,
    b64decode_strict,
    pcm16_to_wav,
    wav_to_pcm16,
)
from tests.signals import dominant_frequency_hz, level_db, tone

#: the header the official client writes for one 200 ms message (section 3.2)
GOLDEN_HEADER_6400 = (
    b"RIFF" + struct.pack("<I", 36 + 6400) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000,
                                                                              32000, 2, 16)
    + b"data" + struct.pack("<I", 6400)
)


def test_s3_2_message_wav_header_matches_golden_bytes() -> None:
    wav = pcm16_to_wav(bytes(6400))
    assert wav[:44] == GOLDEN_HEADER_6400
    assert len(wav) == 6444
    assert len(base64.b64encode(wav)) == 8592  # the size section 3.2 gives


def test_wav_round_trip_keeps_rate_and_samples() -> None:
    pcm = tone(440, 0.1, rate_hz=24_000)
    audio = wav_to_pcm16(pcm16_to_wav(pcm, 24_000))
    assert (audio.pcm, audio.sample_rate_hz, audio.channels) == (pcm, 24_000, 1)
    assert audio.duration_s == pytest.approx(0.1)


def test_s4_2_wav_reader_walks_chunks_instead_of_assuming_44_bytes() -> None:
    wav = pcm16_to_wav(b"\x01\x02" * 8, 24_000)
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde" + b"\x00"  # odd size, padded
    reordered = wav[:36] + extra + wav[36:]
    reordered = reordered[:4] + struct.pack("<I", len(reordered) - 8) + reordered[8:]
    assert wav_to_pcm16(reordered).pcm == b"\x01\x02" * 8


def test_wav_reader_accepts_streaming_placeholder_sizes() -> None:
    wav = bytearray(pcm16_to_wav(b"\x05\x00" * 4))
    wav[40:44] = struct.pack("<I", 0xFFFFFFFF)
    assert wav_to_pcm16(bytes(wav)).pcm == b"\x05\x00" * 4


@pytest.mark.parametrize("bad", [b"", b"RIFF", bytes(6400), b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00"])
def test_non_wav_bytes_raise_audio_format_error(bad: bytes) -> None:
    with pytest.raises(AudioFormatError):
        wav_to_pcm16(bad)


def test_eight_bit_wav_is_refused() -> None:
    wav = bytearray(pcm16_to_wav(b"\x00\x00"))
    wav[34:36] = struct.pack("<H", 8)
    with pytest.raises(AudioFormatError, match="16-bit"):
        wav_to_pcm16(bytes(wav))


def test_b64decode_strict_raises_our_error() -> None:
    assert b64decode_strict(base64.b64encode(b"abc").decode()) == b"abc"
    with pytest.raises(AudioFormatError):
        b64decode_strict("not base64!")


def test_s5_3_buffer_releases_only_whole_200ms_messages_after_chunk_duration() -> None:
    buffer = ChunkBuffer(release_messages=5)  # chunk_duration 1.0 s
    assert buffer.feed(bytes(5 * MESSAGE_BYTES - 1)) == []
    released = buffer.feed(b"\x00")
    assert [len(m) for m in released] == [MESSAGE_BYTES] * 5
    assert buffer.pending_bytes == 0


def test_odd_length_frames_lose_no_bytes() -> None:
    stream = bytes(range(256)) * 100  # 25 600 bytes: 4 messages
    buffer = ChunkBuffer(release_messages=1)
    out = []
    for i in range(0, len(stream), 333):
        out += buffer.feed(stream[i : i + 333])
    assert b"".join(out) == stream


def test_one_byte_frames_lose_no_bytes() -> None:
    stream = bytes(range(256)) * 50 + b"\x07"  # an odd byte left over at the end
    buffer = ChunkBuffer(release_messages=2)
    out = []
    for i in range(len(stream)):
        out += buffer.feed(stream[i : i + 1])
    out += buffer.flush()
    assert b"".join(out) == stream[: len(out) * MESSAGE_BYTES]
    assert buffer.pending_bytes == len(stream) - len(out) * MESSAGE_BYTES
    assert buffer.clear() == len(stream) % MESSAGE_BYTES


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=0, max_size=30_000), cuts=st.lists(st.integers(0, 30_000), max_size=40),
       release=st.integers(1, 5))
def test_any_split_gives_the_same_messages(data: bytes, cuts: list[int], release: int) -> None:
    whole = ChunkBuffer(release)
    expected = whole.feed(data) + whole.flush()
    pieces = ChunkBuffer(release)
    got: list[bytes] = []
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for start, end in itertools.pairwise(bounds):
        got += pieces.feed(data[start:end])
    got += pieces.flush()
    assert got == expected
    assert all(len(m) == MESSAGE_BYTES for m in got)
    assert pieces.pending_bytes == whole.pending_bytes == len(data) % MESSAGE_BYTES


def _resample_all(pcm: bytes, in_rate: int, out_rate: int, piece: int = 2561) -> bytes:
    r = Resampler(in_rate, out_rate)
    return b"".join(r.feed(pcm[i : i + piece]) for i in range(0, len(pcm), piece)) + r.flush()


def test_s7_resampler_24k_to_16k_keeps_a_440hz_tone() -> None:
    out = _resample_all(tone(440, 1.0, rate_hz=24_000), 24_000, 16_000)
    assert abs(len(out) // 2 - 16_000) < 200
    assert dominant_frequency_hz(out) == pytest.approx(440, abs=2)
    assert level_db(out[4000:-4000]) == pytest.approx(level_db(tone(440, 1.0)), abs=0.1)


def test_resampler_rejects_a_10khz_tone_by_at_least_60db() -> None:
    src = tone(10_000, 1.0, rate_hz=24_000, amplitude=0.9)
    out = _resample_all(src, 24_000, 16_000)
    assert level_db(out[4000:-4000]) - level_db(src) <= -60  # no 6 kHz alias


def test_resampler_is_continuous_across_chunks() -> None:
    src = tone(1000, 0.5, rate_hz=24_000)
    whole = Resampler(24_000, 16_000).feed(src)
    chunked = Resampler(24_000, 16_000)
    pieces = b"".join(chunked.feed(src[i : i + 7]) for i in range(0, len(src), 7))
    assert pieces == whole


def test_resampler_passes_equal_rates_through_untouched() -> None:
    src = tone(440, 0.1)
    r = Resampler(16_000, 16_000)
    assert r.feed(src[:101]) + r.feed(src[101:]) + r.flush() == src
    assert r.delay_s == 0


def test_resampler_upsamples_16k_to_24k() -> None:
    out = _resample_all(tone(440, 1.0), 16_000, 24_000)
    assert dominant_frequency_hz(out, 24_000) == pytest.approx(440, abs=2)
    assert np.frombuffer(out, "<i2").size == pytest.approx(24_000, abs=200)


def test_resampler_refuses_nonsense_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 16_000)
