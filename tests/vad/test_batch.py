"""The batched detector: the same decisions as inline, every frame judged, no call after leaving."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.events import ReplyAudio, ReplyEnded, ReplyStarted
from asgi_audio_proxy.session.voice import Heard, VoiceWatch
from asgi_audio_proxy.upstreams.realtime import TurnDetector
from asgi_audio_proxy.vad import CutReply, FrameBatcher
from asgi_audio_proxy.vad.batch import _judge
from asgi_audio_proxy.vad.echo import band_powers
from asgi_audio_proxy.vad.silero import FRAME_SAMPLES, SileroState, shared_model
from tests.clients import ProxyClient
from tests.conftest import running_proxy, running_simulator
from tests.timing import within

from .speech import RATE_HZ, SpeechBank, echo_of, espeak_missing_reason, pink_noise, scale_to_dbfs, to_pcm

STEP = 640  # the client's 20 ms frames


def _frames(seed: int, count: int) -> np.ndarray:
    """PCM16 frames of noise at -20 dBFS, (count, 512)."""
    noise = np.random.default_rng(seed).standard_normal((count, FRAME_SAMPLES)) * 3_277
    return noise.astype(np.int16)


def test_rounds_of_a_tick_give_each_stream_what_frame_by_frame_calls_give() -> None:
    model = shared_model()
    counts = (3, 1, 0, 5)
    streams = [_frames(seed, n) for seed, n in enumerate(counts)]
    alone = [model.frames(SileroState(), frames.astype(np.float32) / 32768) for frames in streams]
    states = [SileroState() for _ in counts]
    parts = [(state, list(frames), [True] * len(frames))
             for state, frames in zip(states, streams, strict=True)]
    results, calls = _judge(model, parts)
    assert calls == max(counts)  # one call per round, not per frame
    for (got, powers), want, frames in zip(results, alone, streams, strict=True):
        assert np.allclose(got, want, atol=1e-5), (got, want)
        assert np.allclose(powers, band_powers(frames.astype(np.float64) / 32768, RATE_HZ))


def test_a_coalesced_frame_takes_the_next_judged_frame_s_probability() -> None:
    frames = _frames(7, 3)
    results, calls = _judge(shared_model(), [(SileroState(), list(frames), [False, False, True])])
    assert calls == 1
    probabilities, powers = results[0]
    assert probabilities[0] == probabilities[1] == probabilities[2]
    assert len(powers) == 3  # the echo comparison still sees every frame


def test_a_late_tick_takes_every_frame_s_band_powers_slice_by_slice() -> None:
    frames = _frames(9, 600)  # 19 s of one session: a tick far behind
    results, calls = _judge(shared_model(), [(SileroState(), list(frames), [False] * 599 + [True])])
    probabilities, powers = results[0]
    assert calls == 1 and len(probabilities) == 600
    assert np.allclose(powers, band_powers(frames.astype(np.float64) / 32768, RATE_HZ))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A reply, and a microphone hearing its echo 80 ms late at -12 dB, then speech over it."""
    reason = espeak_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    bank = SpeechBank(Path(tmp_path_factory.mktemp("speech")))
    reply = scale_to_dbfs(bank.utterance("Here is a long answer about the weather tomorrow.").samples, -20)
    speech = bank.utterance("Wait, stop please.", "en-us+m3", 170)
    mic = np.zeros(len(reply) + 2 * RATE_HZ)
    echo = echo_of(reply, -12, 80, 3)
    mic[: len(echo)] += echo
    at = RATE_HZ  # one second into the reply
    mic[at : at + len(speech.samples)] += scale_to_dbfs(speech.samples, -20, speech.voiced)
    mic += pink_noise(len(mic), -55, 4)
    return to_pcm(reply), to_pcm(mic)


def _play(watch: VoiceWatch, reply: bytes, mic: bytes) -> list[Heard]:
    """The reply sent 200 ms at a time while the microphone streams; a cut ends the reply."""
    heard: list[Heard] = []
    watch.sent(ReplyStarted())
    sent = 0
    for offset in range(0, len(mic), STEP):
        if sent < len(reply) and offset >= sent // 2:  # keep 100 ms of reply ahead of the mic
            watch.sent(ReplyAudio(reply[sent : sent + 6_400], RATE_HZ))
            sent += 6_400
        heard.extend(watch.heard(mic[offset : offset + STEP], RATE_HZ))
    watch.sent(ReplyEnded("complete"))
    return heard


async def test_batched_sessions_hear_what_an_inline_one_hears(scene: tuple[bytes, bytes]) -> None:
    reply, mic = scene
    config = ProxyConfig(barge_in="voice").voice
    inline = _play(VoiceWatch(config), reply, mic)
    assert any(isinstance(event, CutReply) for event in inline), inline
    batcher = FrameBatcher(max_wait_s=60.0)  # each session's whole scene comes in one go
    heard: list[list[Heard]] = [[], [], []]
    watches = [VoiceWatch(config) for _ in heard]
    for watch, into in zip(watches, heard, strict=True):
        watch.batch_with(batcher, into.extend)
    # the sessions' frames and reply audio interleaved, the ticks running while they come
    for watch in watches:
        assert _play(watch, reply, mic) == []  # batched: nothing decided on the caller's path
        await asyncio.sleep(0)  # one yield, so a tick may start between sessions
    async with asyncio.timeout(within(10)):
        await batcher.idle()
    assert heard == [inline] * 3
    assert batcher.stats.coalesced_frames == 0
    assert batcher.stats.frames == 3 * (len(mic) // (2 * FRAME_SAMPLES))
    assert batcher.stats.calls < batcher.stats.frames  # batched, not frame by frame


class HeldModel:
    """The shared model, held in the worker thread until the test lets it go."""

    def __init__(self) -> None:
        self.running = threading.Event()
        self.go_on = threading.Event()

    def batch(self, states: list[SileroState], frames: np.ndarray) -> list[float]:
        self.running.set()
        self.go_on.wait(within(10))
        return shared_model().batch(states, frames)


async def test_a_session_that_leaves_is_never_called_back_and_not_kept() -> None:
    config = ProxyConfig(barge_in="voice").voice
    model = HeldModel()
    batcher = FrameBatcher(model)
    told: list[str] = []
    leaving = VoiceWatch(config)
    leaving.batch_with(batcher, lambda heard: told.append("leaving"))
    left = batcher.join(lambda probabilities, powers: told.append("left"))
    staying = batcher.join(lambda probabilities, powers: told.extend(["staying"] * len(probabilities)))
    leaving.heard(to_pcm(pink_noise(RATE_HZ, -20, 5)), RATE_HZ)
    left.feed(_frames(4, 2))
    staying.feed(_frames(5, 4))
    assert await asyncio.to_thread(model.running.wait, within(10))
    leaving.close()  # while their frames are in the worker thread
    left.leave()
    leaving.heard(bytes(4 * 2 * FRAME_SAMPLES), RATE_HZ)  # after leaving: ignored
    staying.feed(_frames(6, 4))
    model.go_on.set()
    async with asyncio.timeout(within(10)):
        await batcher.idle()
    assert told == ["staying"] * 8  # every frame of the one that stayed, nothing to the other
    assert batcher.stats.frames == 8 + 2 + RATE_HZ // FRAME_SAMPLES  # the leavers' first ran
    gone: list[weakref.ref[object]] = [weakref.ref(leaving), weakref.ref(left)]
    del leaving, left
    gc.collect()
    assert [ref() for ref in gone] == [None, None]  # the batcher keeps nothing of them


async def test_frames_that_waited_too_long_are_coalesced_and_counted_never_dropped() -> None:
    config = ProxyConfig(barge_in="voice").voice
    batcher = FrameBatcher(max_wait_s=-1.0)  # every frame has waited too long, as if behind
    watch = VoiceWatch(config)
    watch.batch_with(batcher, lambda heard: None)
    watch.heard(bytes(10 * 2 * FRAME_SAMPLES), RATE_HZ)
    async with asyncio.timeout(within(10)):
        await batcher.idle()
    assert batcher.stats.frames == 10  # every frame has its probability
    assert batcher.stats.coalesced_frames == watch.coalesced_frames == 9  # all but the newest
    assert batcher.stats.calls == 1


async def test_each_loop_has_its_batcher() -> None:
    first = FrameBatcher.for_running_loop()
    assert FrameBatcher.for_running_loop() is first
    other = await asyncio.to_thread(asyncio.run, _its_batcher())
    assert other is not first


async def _its_batcher() -> FrameBatcher:
    return FrameBatcher.for_running_loop()


async def test_a_proxy_session_s_frames_go_through_its_loop_s_batch_and_leave_with_it(
        caplog: pytest.LogCaptureFixture) -> None:
    noise = to_pcm(pink_noise(RATE_HZ // 2, -20, 8))  # half a second, sent at once
    async with running_simulator() as up, \
            running_proxy("uvicorn", up.url, barge_in="voice") as (proxy, url):
        batcher = FrameBatcher.for_running_loop()  # the server's: it serves in this loop
        ticks = batcher.stats.ticks
        async with ProxyClient(url) as client:
            for offset in range(0, len(noise), STEP):
                await client.conn.send(noise[offset : offset + STEP])
        # the client left with its frames waiting or in the worker thread
        async with asyncio.timeout(within(10)):
            await proxy.wait_idle()
            await batcher.idle()
    assert batcher.stats.ticks > ticks
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records


@pytest.fixture(scope="module")
def two_turns(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """Two utterances, each followed by 1.2 s of quiet, in pink noise at -55 dBFS: PCM16 of each."""
    reason = espeak_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    bank = SpeechBank(Path(tmp_path_factory.mktemp("turns")))
    turns = []
    for seed, text in enumerate(("Could you repeat the last part?", "Hold on a second please.")):
        said = bank.utterance(text)
        pcm = np.zeros(RATE_HZ // 2 + len(said.samples) + RATE_HZ * 6 // 5)
        pcm[RATE_HZ // 2 : RATE_HZ // 2 + len(said.samples)] += scale_to_dbfs(said.samples, -20, said.voiced)
        turns.append(to_pcm(pcm + pink_noise(len(pcm), -55, seed)))
    return turns[0], turns[1]


def _turns_inline(detector: TurnDetector, *pieces: bytes, forget_after_first: bool = False) -> int:
    """Each piece heard 20 ms at a time, then its turn taken if one ended; with
    ``forget_after_first``, the client commits the first piece itself (its turn is forgotten)."""
    taken = 0
    for index, pcm in enumerate(pieces):
        for offset in range(0, len(pcm), STEP):
            detector.heard(pcm[offset : offset + STEP])
        if forget_after_first and index == 0:
            detector.forget()
        taken += detector.take_turn()
    return taken


async def test_a_batched_turn_detector_ends_the_turns_an_inline_one_ends(
        two_turns: tuple[bytes, bytes]) -> None:
    """The Realtime upstream's own turn ends: batched, told to the callback; a forget covers
    the audio heard before it, even when its frames are judged after it."""
    config = ProxyConfig().voice
    assert _turns_inline(TurnDetector(config, RATE_HZ), *two_turns) == 2
    assert _turns_inline(TurnDetector(config, RATE_HZ), *two_turns, forget_after_first=True) == 1
    batcher = FrameBatcher(max_wait_s=60.0)
    for forget_after_first, expected in ((False, 2), (True, 1)):
        detector = TurnDetector(config, RATE_HZ)
        told: list[bool] = []
        detector.batch_with(batcher, lambda d=detector, into=told: into.append(d.take_turn()))
        # no yield while feeding: every frame is judged after the forget
        assert _turns_inline(detector, *two_turns, forget_after_first=forget_after_first) == 0
        async with asyncio.timeout(within(10)):
            await batcher.idle()
        assert told == [True] * expected, (forget_after_first, told)
        detector.close()
