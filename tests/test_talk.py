"""The test client's parts: signals, WAV conversion, turn bookkeeping, console, microphone path.

The pure parts are fed chosen inputs; the microphone capture runs with a fake input stream (a
thread playing a tone at real-time pace, as PortAudio's would) and, once, end to end through
the demo, so the whole ``microphone`` mode is exercised without a device.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asgi_audio_proxy.audio import CLIENT_SAMPLE_RATE_HZ, pcm16_to_wav
from asgi_audio_proxy.client.audio import (
    FRAME_BYTES,
    generated_utterance,
    is_loud,
    mix_to_16k_mono,
    silence,
    split_frames,
    wav_file_to_16k_mono,
)
from asgi_audio_proxy.client.console import Console
from asgi_audio_proxy.client.microphone import (
    MicrophoneCapture,
    MicrophoneUnavailable,
    open_sounddevice,
)
from asgi_audio_proxy.client.talk import TalkFailed, TalkOptions, talk
from asgi_audio_proxy.client.turns import TurnPhase, TurnTracker
from asgi_audio_proxy.demo.server import DemoServer
from tests.conftest import running_proxy, running_simulator
from tests.servers import serve_uvicorn
from tests.signals import dominant_frequency_hz, level_db, tone
from tests.test_one_conversation import command
from tests.timing import within


def stereo(left: bytes, right: bytes) -> bytes:
    a = np.frombuffer(left, "<i2")
    b = np.frombuffer(right, "<i2")
    return np.stack([a, b], axis=1).astype("<i2").tobytes()


# -- signals ---------------------------------------------------------------------------------

def test_generated_utterance_is_loud_and_strongest_at_its_base_frequency() -> None:
    pcm = generated_utterance(seconds=1.2, base_hz=440.0)
    assert len(pcm) == 2 * round(1.2 * CLIENT_SAMPLE_RATE_HZ)
    assert abs(dominant_frequency_hz(pcm) - 440.0) < 2
    assert is_loud(pcm)
    assert level_db(pcm) < -6  # leaves headroom: amplitude 0.3


def test_generated_utterance_has_no_click_at_either_end() -> None:
    samples = np.frombuffer(generated_utterance(), "<i2")
    assert abs(int(samples[0])) < 50 and abs(int(samples[-1])) < 50


def test_generated_utterance_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="seconds"):
        generated_utterance(seconds=0)


def test_stereo_44k1_wav_becomes_16k_mono_at_the_same_pitch() -> None:
    left = tone(1000.0, 1.0, rate_hz=44_100)
    wav = pcm16_to_wav(stereo(left, left), 44_100, channels=2)
    pcm = wav_file_to_16k_mono(wav)
    assert len(pcm) == 2 * CLIENT_SAMPLE_RATE_HZ
    assert abs(dominant_frequency_hz(pcm) - 1000.0) < 2
    assert abs(level_db(pcm) - level_db(left)) < 0.5


def test_channels_are_mixed_down_as_their_mean() -> None:
    left = tone(500.0, 0.5)
    pcm = mix_to_16k_mono(stereo(left, silence(0.5)), CLIENT_SAMPLE_RATE_HZ, 2)
    assert abs(level_db(pcm) - (level_db(left) - 6.02)) < 0.1


def test_a_tone_above_8khz_is_filtered_out_not_aliased() -> None:
    # dropping samples would fold 10 kHz to 6 kHz at full level; the low-pass removes it
    pcm = mix_to_16k_mono(tone(10_000.0, 1.0, rate_hz=48_000), 48_000, 1)
    # 40 dB: the abrupt start and end of the test tone leak a little past the stop band
    assert level_db(pcm) < level_db(tone(10_000.0, 1.0)) - 40


def test_16k_mono_wav_passes_through_unchanged() -> None:
    pcm = tone(440.0, 0.3)
    assert wav_file_to_16k_mono(pcm16_to_wav(pcm)) == pcm


def test_split_frames_pads_only_the_last_frame() -> None:
    frames = split_frames(b"\1\0" * 1000, frame_bytes=600)
    assert [len(f) for f in frames] == [600, 600, 600, 600]
    assert frames[-1].endswith(b"\0" * 400)


def test_silence_is_not_loud_and_speech_level_is() -> None:
    assert not is_loud(silence(0.05))
    assert not is_loud(tone(440, 0.05, amplitude=0.005))
    assert is_loud(tone(440, 0.05, amplitude=0.05))


# -- turn bookkeeping ------------------------------------------------------------------------

def test_latency_runs_from_the_last_loud_frame_to_the_first_reply_audio() -> None:
    tracker = TurnTracker()
    tracker.frame_sent(10.0, FRAME_BYTES, loud=True)
    tracker.frame_sent(10.5, FRAME_BYTES, loud=True)
    tracker.frame_sent(11.0, FRAME_BYTES, loud=False)
    tracker.reply_text_received("Hello ")
    tracker.frame_sent(11.2, FRAME_BYTES, loud=True)  # echo of the reply: not the user
    tracker.reply_audio_received(11.7, 3200)
    tracker.reply_audio_received(11.8, 3200)
    tracker.reply_text_received("there.")
    result = tracker.turn_ended("complete")
    assert result.number == 1
    assert result.text == "Hello there."
    assert result.latency_s == pytest.approx(1.2)
    assert result.reply_audio_s == pytest.approx(0.2)
    assert tracker.sent_s == pytest.approx(4 * FRAME_BYTES / 32_000)
    assert tracker.all_answered(1)


def test_a_turn_without_reply_audio_fails_the_run() -> None:
    tracker = TurnTracker()
    tracker.frame_sent(1.0, FRAME_BYTES, loud=True)
    tracker.reply_audio_received(2.0, 320)
    tracker.turn_ended("complete")
    result = tracker.turn_ended("timeout")
    assert result.latency_s is None and not result.got_reply
    assert not tracker.all_answered(2)
    assert not TurnTracker().all_answered(1)


def test_a_reply_that_ends_while_the_utterance_is_still_sent_answers_it() -> None:
    tracker = TurnTracker()
    tracker.utterance_started()
    tracker.frame_sent(1.0, FRAME_BYTES, loud=True)
    assert tracker.phase is TurnPhase.AWAITING_REPLY and tracker.owes_reply
    tracker.frame_sent(2.0, FRAME_BYTES, loud=False)  # the recording's quiet end goes on...
    tracker.reply_audio_received(3.0, 3200)
    assert tracker.in_reply
    tracker.turn_ended("complete")
    tracker.frame_sent(4.0, FRAME_BYTES, loud=False)  # ...past the reply's turn_end
    tracker.utterance_ended(4.0)
    assert tracker.phase is TurnPhase.LISTENING and not tracker.owes_reply
    assert [r.latency_s for r in tracker.results] == [2.0] and tracker.all_answered(1)


def test_a_recording_with_two_utterances_is_two_turns() -> None:
    tracker = TurnTracker()
    tracker.utterance_started()
    for start in (0.0, 10.0):
        tracker.frame_sent(start + 1, FRAME_BYTES, loud=True)
        tracker.reply_text_received("heard")
        tracker.reply_audio_received(start + 2, 3200)
        tracker.turn_ended("complete")
    tracker.frame_sent(15.0, FRAME_BYTES, loud=True)  # a third, unanswered when the file ends
    tracker.utterance_ended(16.0)
    assert tracker.owes_reply and len(tracker.results) == 2
    tracker.reply_audio_received(17.0, 3200)
    assert tracker.turn_ended("complete").latency_s == 2.0


def test_an_utterance_too_quiet_to_open_a_turn_still_owes_a_reply_once_said() -> None:
    tracker = TurnTracker()
    tracker.utterance_started()
    tracker.frame_sent(1.0, FRAME_BYTES, loud=False)
    assert not tracker.owes_reply  # nothing loud yet: it may be room tone
    tracker.utterance_ended(2.0)
    assert tracker.phase is TurnPhase.AWAITING_REPLY
    tracker.reply_audio_received(2.5, 3200)
    assert tracker.turn_ended("complete").latency_s == 0.5


def test_loud_frames_while_a_reply_arrives_are_its_echo_and_open_no_turn() -> None:
    tracker = TurnTracker()
    tracker.frame_sent(1.0, FRAME_BYTES, loud=True)
    tracker.reply_audio_received(2.0, 3200)
    tracker.frame_sent(2.5, FRAME_BYTES, loud=True)
    tracker.turn_ended("complete")
    assert not tracker.owes_reply and tracker.results[0].latency_s == 1.0


def test_unknown_turn_end_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="reason"):
        TurnTracker().turn_ended("bored")


def test_console_prints_transcript_and_results_and_no_progress_off_a_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err, live=False)
    tracker = TurnTracker()
    tracker.frame_sent(0.0, FRAME_BYTES * 20, loud=True)
    console.progress(tracker)
    console.reply_text("Turn 1: ")
    console.reply_text("heard it.")
    tracker.reply_audio_received(0.25, 16_000)
    console.turn_result(tracker.turn_ended("complete"))
    console.summary(tracker.results, True)
    assert out.getvalue() == ("assistant: Turn 1: heard it.\n"
                              "turn 1: 0.50 s of reply audio, latency 250 ms (complete)\n"
                              "ok: 1/1 turn(s) got a reply, mean latency 250 ms\n")
    assert err.getvalue() == ""


def test_console_progress_line_is_rewritten_in_place_on_a_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err, live=True)
    tracker = TurnTracker()
    tracker.frame_sent(0.0, FRAME_BYTES * 20, loud=True)
    console.progress(tracker)
    console.status("turn 1/1")
    assert err.getvalue().startswith("\r\033[K  streaming:    1.0 s sent, 0 turn(s) done")
    assert err.getvalue().endswith("\r\033[K* turn 1/1\n")


# -- microphone ------------------------------------------------------------------------------

class FakeInputStream:
    """Plays PCM16 blocks into the callback from its own thread, at real-time pace, like PortAudio."""

    def __init__(self, pcm: bytes, *, samplerate: int, channels: int, dtype: str, blocksize: int,
                 callback: Any) -> None:
        assert (channels, dtype) == (1, "int16")
        self.pcm, self.rate, self.block, self.callback = pcm, samplerate, blocksize, callback
        self.running = threading.Event()
        self.closed = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        step = 2 * self.block
        start = time.monotonic()
        for n, i in enumerate(range(0, len(self.pcm) - step + 1, step)):
            if not self.running.is_set():
                return
            # the device's clock, not test synchronisation: a block exists once it is recorded
            time.sleep(max(0.0, start + (n + 1) * self.block / self.rate - time.monotonic()))
            self.callback(memoryview(self.pcm[i : i + step]), self.block, None, None)

    def start(self) -> None:
        self.running.set()
        self._thread.start()

    def stop(self) -> None:
        self.running.clear()

    def close(self) -> None:
        self.closed = True


def fake_microphone(pcm: bytes, rate: int) -> tuple[MicrophoneCapture, list[FakeInputStream]]:
    streams: list[FakeInputStream] = []

    def factory(**kwargs: Any) -> FakeInputStream:
        streams.append(FakeInputStream(pcm, **kwargs))
        return streams[-1]

    return MicrophoneCapture(factory, rate), streams


async def test_microphone_capture_resamples_a_48k_device_to_16k_frames() -> None:
    capture, streams = fake_microphone(tone(440.0, 2.0, rate_hz=48_000), 48_000)
    pcm = bytearray()
    frames = capture.frames()
    async with asyncio.timeout(within(5)):
        async for frame in frames:
            pcm += frame
            if len(pcm) >= 2 * CLIENT_SAMPLE_RATE_HZ:
                break
    await frames.aclose()
    assert streams[0].closed and not streams[0].running.is_set()
    assert abs(dominant_frequency_hz(bytes(pcm[3200:])) - 440.0) < 2
    assert capture.dropped_blocks == 0


async def test_microphone_mode_talks_to_the_demo_end_to_end() -> None:
    speech = tone(550.0, 1.0, rate_hz=48_000) + silence(6.0) * 3
    capture, streams = fake_microphone(speech, 48_000)
    out, err = io.StringIO(), io.StringIO()
    async with DemoServer(port=0) as demo:
        options = TalkOptions(proxy_url=demo.proxy_url, mode="microphone", turns=1)
        async with asyncio.timeout(within(15)):
            code = await talk(options, Console(out, err, live=False), capture)
    assert code == 0, out.getvalue() + err.getvalue()
    assert "assistant: Turn 1: heard" in out.getvalue()
    assert streams[0].closed


def test_without_a_device_the_microphone_says_so() -> None:
    try:
        open_sounddevice()
    except MicrophoneUnavailable as exc:
        assert any(word in str(exc) for word in ("sounddevice", "PortAudio", "microphone"))
    else:
        pytest.skip("this machine has a microphone")


async def test_a_recording_that_ends_in_silence_is_one_turn_answered_while_it_streams(
        tmp_path: Path) -> None:
    # the README's recipe against ``serve`` (its defaults) and ``simulate``: the whole reply,
    # turn_end included, comes during the file's last two seconds of quiet
    (tmp_path / "speech.wav").write_bytes(pcm16_to_wav(tone(440.0, 3.0) + silence(2.0)))
    async with running_simulator() as upstream, running_proxy("uvicorn", upstream.url) as (_, url):
        proc = await asyncio.create_subprocess_exec(
            *command("client", "--proxy-url", url, "--mode", "file", "speech.wav"),
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(within(30)):
            out, err = (stream.decode() for stream in await proc.communicate())
    assert proc.returncode == 0, out + err
    turns = re.findall(r"^turn \d+: .*$", out, re.MULTILINE)
    assert len(turns) == 1 and turns[0].startswith("turn 1: ") and turns[0].endswith("(complete)"), out
    assert out.count("assistant: Turn 1: heard") == 1 and "Turn 2" not in out, out
    assert out.rstrip().splitlines()[-1].startswith("ok: 1/1 turn(s) got a reply"), out


async def test_an_unreachable_proxy_is_a_clear_failure() -> None:
    options = TalkOptions(proxy_url="ws://127.0.0.1:9/audio_proxy", mode="generated", utterance=b"")
    with pytest.raises(TalkFailed, match="cannot connect"):
        async with asyncio.timeout(within(10)):
            await talk(options, Console(io.StringIO(), io.StringIO(), live=False))


READY = '{"type":"ready","session":"s1","upstream_version":"2.6"}'


@pytest.mark.parametrize("frames", [["{\"type\":\"dance\"}"], [READY, "{\"type\":\"dance\"}"]],
                         ids=["before ready", "after ready"])
async def test_a_message_the_protocol_does_not_have_fails_the_run_naming_it(frames: list[str]) -> None:
    async def proxy(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        for frame in frames:
            await send({"type": "websocket.send", "text": frame})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with serve_uvicorn(proxy) as port:
        options = TalkOptions(proxy_url=f"ws://127.0.0.1:{port}/", mode="generated",
                              utterance=tone(440.0, 0.5))
        with pytest.raises(TalkFailed, match="unknown message type 'dance'"):
            async with asyncio.timeout(within(10)):
                await talk(options, Console(io.StringIO(), io.StringIO(), live=False))
