"""The simulator's pure core, against ``UPSTREAM_PROTOCOL.md`` sections 1 and 5.2-5.6: VAD,
prefill, echo guard, option lookups, reply building, and the recorder's wait. No sockets: the
clock is driven by hand (``FakeClock``: +0.2 s per 200 ms message).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from asgi_audio_proxy.audio import pcm16_to_wav, wav_to_pcm16
from asgi_audio_proxy.simulator.app import UpstreamSimulator
from asgi_audio_proxy.simulator.model import build_reply
from asgi_audio_proxy.simulator.recorder import SimulatorRecorder
from asgi_audio_proxy.simulator.state import ChunkError, Conversation, OptionsStore
from asgi_audio_proxy.simulator.vad import speech_seconds
from tests.signals import silence, tone
from tests.simulator_wire import OPTIONS, SPEECH, audio_message, pieces
from tests.timing import within

# -- pure core: VAD, prefill, echo guard (sections 5.2-5.5) ---------------------------------------


def conversation(options: Any = None, version: Any = "2.6") -> Conversation:
    store = OptionsStore(value=options, ever_set=options is not None)
    conv = Conversation(version=version, options=store, reply_chunks=None)
    conv.open_completions("U1", 0.0)
    return conv


def feed(conv: Conversation, pcm: bytes, start: float, step: float = 0.2) -> list[str]:
    reasons = []
    for i, piece in enumerate(pieces(pcm)):
        conv.touch(start + step * (i + 1), stream=True)
        reasons.append(conv.process_message(audio_message(piece), start + step * (i + 1)))
    return reasons


def test_s5_2_energy_vad_counts_speech_with_padding() -> None:
    speech = np.frombuffer(tone(440, 1.0), "<i2").astype(np.float32) / 32768
    assert speech_seconds(speech) == pytest.approx(1.0)
    half = np.concatenate([speech[:8000], np.zeros(8000, np.float32)])
    assert speech_seconds(half) == pytest.approx(1.0)  # silence under 500 ms counts as speech
    quarter = np.concatenate([speech[:4000], np.zeros(12000, np.float32)])
    assert speech_seconds(quarter) == pytest.approx((4 * 1024 + 480) / 16000)  # 30 ms padding
    assert speech_seconds(np.zeros(16000, np.float32)) == 0.0


def test_s5_2_turn_ends_one_second_after_speech_at_real_time_pace() -> None:
    conv = conversation()
    reasons = feed(conv, SPEECH, 0.0)
    assert reasons[:10] == ["done"] * 10 and reasons[10:] == ["skip"]
    assert conv.turn_ends == 1


def test_s5_2_burst_shorter_than_0_6_s_of_wall_clock_does_not_end_the_turn() -> None:
    conv = conversation()
    assert feed(conv, SPEECH, 0.0, step=0.05) == ["done"] * 11
    assert conv.turn_ends == 0


def test_a_simulator_with_no_minimum_turn_ends_the_burst_by_its_audio() -> None:
    conv = Conversation(version="2.6", options=OptionsStore(), reply_chunks=None, min_turn_s=0.0)
    conv.open_completions("U1", 0.0)
    assert feed(conv, SPEECH, 0.0, step=0.05)[:10] == ["done"] * 10
    assert conv.turn_ends == 1


def test_the_simulator_passes_its_minimum_turn_to_each_conversation() -> None:
    sim = UpstreamSimulator(multi_conversation=True, min_turn_s=0.0)
    assert sim.conversation_for("U1").min_turn_s == 0.0
    assert UpstreamSimulator().conversation_for("U1").min_turn_s == 0.6
    with pytest.raises(ValueError, match="min_turn_s"):
        UpstreamSimulator(min_turn_s=-1.0)


def test_s5_2_vad_threshold_sets_the_end_rule() -> None:
    never = conversation({**OPTIONS, "vad_threshold": 1.0})
    feed(never, SPEECH, 0.0)
    assert never.turn_ends == 0 and never.speaking
    soon = conversation({**OPTIONS, "vad_threshold": 0.5})
    reasons = feed(soon, SPEECH, 0.0)
    assert reasons.index("skip") == 9  # d = 0.22 s < 0.5 ends it one message earlier


def test_s1_no_audio_trigger_ends_a_turn_after_3_s() -> None:
    conv = conversation()
    feed(conv, tone(440, 1.0), 0.0)
    assert conv.speaking
    conv.tick(3.9, inactivity_s=900, no_audio_s=3.0)
    assert not conv.turn_complete
    conv.tick(4.1, inactivity_s=900, no_audio_s=3.0)
    assert conv.turn_complete and conv.turn_ends == 1


def test_s5_3_prefill_truncated_to_16000_samples() -> None:
    conv = conversation()
    for i in range(5):  # five 400 ms messages: 2 s sent, 1 s prefilled
        conv.process_message(audio_message(tone(440, 0.4)), 0.2 * (i + 1))
    assert [len(a) for a in conv.model.heard] == [16_000]
    assert len(conv.audio_input) == 5


def test_s5_4_leftover_is_prefilled_only_without_options_or_with_hd_video() -> None:
    for options, heard in ((None, 35_200), (OPTIONS, 32_000), ({**OPTIONS, "hd_video": True}, 35_200)):
        conv = conversation(options)
        feed(conv, tone(440, 1.2) + silence(1.0), 0.0)  # ends at message 11: one left over
        assert conv.turn_ends == 1
        assert sum(len(a) for a in conv.model.heard) == heard, options


def test_s5_5_echo_guard_drops_prefill_until_the_next_completions() -> None:
    conv = conversation()
    conv.audio_input = [pcm16_to_wav(silence(0.2))]
    conv.echo_wav()
    conv.generate(10.0)
    for _ in range(3):
        conv.chunk_sent()
        conv.chunk_done()
    conv.end_reply()
    guard_end = 10.0 + 3 * (12_800 / 24_000 + 0.15) + 2.5
    assert conv.process_message(audio_message(silence(0.2)), guard_end - 0.01) == "done"
    assert conv.audio_input == []  # acked, not kept
    assert conv.process_message(audio_message(silence(0.2)), guard_end + 0.01) == "done"
    assert len(conv.audio_input) == 1
    conv.end_reply()
    conv.speaking_time_stamp = 50.0
    conv.open_completions("U1", 50.0)  # zeroes the guard
    conv.process_message(audio_message(silence(0.2)), 50.1)
    assert len(conv.audio_input) == 1


def test_s5_6_missing_option_keys_fail_the_chunk_once_per_session() -> None:
    conv = conversation({"vad_threshold": 0.8})
    with pytest.raises(ChunkError, match="Audio processing error: 'voice_clone_prompt'"):
        conv.process_message(audio_message(silence(0.2)), 0.2)
    assert conv.process_message(audio_message(silence(0.2)), 0.4) == "done"
    four_five = conversation({"vad_threshold": 0.8}, version="4.5")  # prompts ignored by 4.5
    assert four_five.process_message(audio_message(silence(0.2)), 0.2) == "done"


def test_s7_reply_audio_is_what_was_heard_at_the_version_rate() -> None:
    heard = np.frombuffer(tone(440, 2.0), "<i2").astype(np.float32) / 32768
    text, _, chunks = build_reply("2.6", 1, heard, None)
    assert text == "Turn 1: heard 2.0 s of audio, 2.0 s of it sound." == "".join(c.text for c in chunks)
    audio = [wav_to_pcm16(c.wav) for c in chunks]
    assert {a.sample_rate_hz for a in audio} == {24_000}
    assert [len(a.pcm) // 2 for a in audio] == [12_800, 12_800, 12_800, 9_600]
    _, _, chunks = build_reply("4.5", 1, heard, None)
    assert [(wav_to_pcm16(c.wav).sample_rate_hz, len(c.wav) - 44) for c in chunks] == [(16_000, 32_000)] * 2
    assert b"".join(c.wav[44:] for c in chunks) == tone(440, 2.0)
    _, _, fixed = build_reply("2.6", 1, heard[:100], 3)
    assert [len(c.wav) - 44 for c in fixed] == [25_600] * 3


async def test_recorder_wait_for_wakes_on_change_and_times_out() -> None:
    recorder = SimulatorRecorder()
    waiter = asyncio.create_task(recorder.wait_for(lambda r: r.stops >= 2, timeout=within(2)))
    for _ in range(2):
        await asyncio.sleep(0)  # a single yield, so the waiter is parked on the event
        recorder.stops += 1
        recorder.changed()
    await waiter
    with pytest.raises(TimeoutError):
        await recorder.wait_for(lambda r: r.stops >= 3, timeout=0.01)


