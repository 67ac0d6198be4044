"""Pipecat's ``OpenAIRealtimeLLMService`` in a pipeline of its own (source tap, the service, sink
tap) against the proxy in front of the simulator: what tests/frameworks/test_pipecat.py drives.
Imported by the tests that run, so a worker that runs none does not pay for Pipecat's import."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.realtime import events
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
from pipecat.workers.runner import WorkerRunner

from tests.clients import at_real_time
from tests.dialects.test_realtime_sdk import KEY
from tests.signals import silence
from tests.timing import within

from .conftest import RATE_HZ, Sent, watched_proxy

__all__ = ["RATE_HZ", "Bot", "InterruptionFrame", "LLMContext", "LLMContextFrame",
           "ProposedUserStartedSpeakingFrame", "ProposedUserStoppedSpeakingFrame",
           "UserStartedSpeakingFrame", "UserStoppedSpeakingFrame", "events", "pipecat_bot", "replies",
           "silence", "speaking", "spoken"]

CHUNK_BYTES = RATE_HZ * 2 // 50  # 20 ms, as a transport delivers microphone audio


class Tap(FrameProcessor):
    """Keeps every frame going ``direction`` past it, and wakes whoever waits on them."""

    def __init__(self, direction: FrameDirection) -> None:
        super().__init__()
        self.frames: list[Frame] = []
        self._direction = direction
        self._changed = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == self._direction:
            self.frames.append(frame)
            self._changed.set()
        await self.push_frame(frame, direction)

    async def until(self, done: Callable[[list[Frame]], bool], timeout_s: float = 20) -> None:
        async with asyncio.timeout(within(timeout_s)):
            while not done(self.frames):
                self._changed.clear()
                await self._changed.wait()


def replies(frames: list[Frame]) -> list[list[Frame]]:
    """The downstream frames split at each reply's end (the last piece is any reply under way)."""
    out: list[list[Frame]] = [[]]
    for frame in frames:
        out[-1].append(frame)
        if isinstance(frame, LLMFullResponseEndFrame):
            out.append([])
    return out[:-1]


def speaking(frames: list[Frame], reply: int) -> bool:
    """Whether audio of reply number ``reply`` (from 1) has come."""
    ended = 0
    for frame in frames:
        if isinstance(frame, LLMFullResponseEndFrame):
            ended += 1
        elif ended == reply - 1 and isinstance(frame, TTSAudioRawFrame) and frame.audio:
            return True
    return False


def spoken(reply: list[Frame]) -> bool:
    return (any(isinstance(f, TTSAudioRawFrame) and f.audio for f in reply)
            and any(isinstance(f, TTSTextFrame) and f.text for f in reply))


class Bot:
    """One Pipecat pipeline (source tap, the Realtime service, sink tap) run by its runner."""

    def __init__(self, llm: OpenAIRealtimeLLMService, sent: Sent) -> None:
        self.llm = llm
        self.sent = sent
        self.up = Tap(FrameDirection.UPSTREAM)
        self.down = Tap(FrameDirection.DOWNSTREAM)
        self.worker = PipelineWorker(Pipeline([self.up, llm, self.down]), cancel_on_idle_timeout=False,
                                     params=PipelineParams(audio_in_sample_rate=RATE_HZ))

    async def push(self, frame: Frame) -> None:
        await self.worker.queue_frame(frame)

    async def say(self, pcm: bytes) -> None:
        """``pcm`` as microphone frames at real-time pace."""
        start = asyncio.get_running_loop().time()
        for i in range(0, len(pcm), CHUNK_BYTES):
            await self.push(InputAudioRawFrame(audio=pcm[i:i + CHUNK_BYTES], sample_rate=RATE_HZ,
                                               num_channels=1))
            await at_real_time(start, (i + CHUNK_BYTES) / (RATE_HZ * 2))

    async def replied(self, count: int) -> None:
        await self.down.until(lambda frames: len(replies(frames)) >= count)

    def check_alive(self) -> None:
        """No error event was sent, none reached Pipecat, and its receive loop still runs."""
        assert not self.sent.errors, self.sent.errors
        fatal = [f for f in self.up.frames + self.down.frames
                 if isinstance(f, ErrorFrame) and str(f.error).startswith("Error:")]
        assert not fatal, fatal
        task: Any = self.llm._receive_task
        assert task is not None and not task.done()


@contextlib.asynccontextmanager
async def pipecat_bot(session: events.SessionProperties, system_instruction: str | None = None,
                      **proxy: Any) -> AsyncIterator[Bot]:
    """The service's settings: ``session`` (its ``session_properties``) and, since Pipecat 1.9,
    the ``system_instruction`` it sends as the session's ``instructions``; ``proxy``, what
    :func:`watched_proxy` takes."""
    async with watched_proxy(**proxy) as (base_url, sent):
        llm = OpenAIRealtimeLLMService(api_key=KEY, base_url=base_url + "/realtime",
                                       settings=OpenAIRealtimeLLMService.Settings(
                                           model="gpt-realtime", session_properties=session,
                                           system_instruction=system_instruction))
        bot = Bot(llm, sent)
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(bot.worker)
        running = asyncio.create_task(runner.run())
        try:
            yield bot
        finally:
            await bot.worker.cancel()
            await asyncio.wait_for(running, within(10))
