"""LiveKit Agents' OpenAI plugin against the proxy in front of the simulator, driven as
``AgentSession`` drives it, and a microphone and a speaker for an ``AgentSession`` with no room:
what tests/frameworks/test_livekit.py runs. Imported by the tests that run, so a worker that runs
none does not pay for LiveKit's import (three seconds of CPU)."""


from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from livekit import rtc
from livekit.agents import Agent as LiveKitAgent
from livekit.agents import AgentSession, llm
from livekit.agents.voice import io
from livekit.plugins.openai.realtime import RealtimeModel, RealtimeSession

from tests.clients import at_real_time
from tests.dialects.test_realtime_sdk import KEY
from tests.signals import silence
from tests.timing import within

from .conftest import RATE_HZ, Sent, watched_proxy

__all__ = ["RATE_HZ", "Agent", "Microphone", "Speaker", "SpeakingSession", "agent_session", "heard",
           "livekit_agent", "llm", "realtime_model", "replied", "silence"]

FRAME_SAMPLES = RATE_HZ // 50  # 20 ms frames, as a LiveKit room delivers them


class Agent:
    """One plugin session: what it was told (generations, errors), and a microphone."""

    def __init__(self, session: RealtimeSession, sent: Sent) -> None:
        self.session = session
        self.sent = sent
        self.generations: asyncio.Queue[llm.GenerationCreatedEvent] = asyncio.Queue()
        self.errors: list[llm.RealtimeModelError] = []
        session.on("generation_created", self.generations.put_nowait)
        session.on("error", self.errors.append)

    async def say(self, pcm: bytes) -> None:
        start = asyncio.get_running_loop().time()
        step = FRAME_SAMPLES * 2
        for i in range(0, len(pcm), step):
            piece = pcm[i:i + step]
            self.session.push_audio(rtc.AudioFrame(piece, RATE_HZ, 1, len(piece) // 2))
            await at_real_time(start, (i + step) / (RATE_HZ * 2))

    async def next_generation(self, timeout_s: float = 20) -> llm.GenerationCreatedEvent:
        async with asyncio.timeout(within(timeout_s)):
            return await self.generations.get()

    async def turn(self, question: bytes) -> tuple[bytes, str]:
        """Speak (then a pause, as a user does) while the model's turn detection ends the turn."""
        speaking = asyncio.create_task(self.say(question + silence(1.4, RATE_HZ)))
        try:
            return await heard(await self.next_generation())
        finally:
            await speaking


async def heard(generation: llm.GenerationCreatedEvent, timeout_s: float = 20) -> tuple[bytes, str]:
    """The reply's audio and text, read to the end."""
    audio, text = bytearray(), []

    async def read_audio(stream: Any) -> None:
        async for frame in stream:
            audio.extend(frame.data.tobytes())

    async def read_text(stream: Any) -> None:
        async for piece in stream:
            text.append(str(piece))

    async with asyncio.timeout(within(timeout_s)):
        async for message in generation.message_stream:
            await asyncio.gather(read_audio(message.audio_stream), read_text(message.text_stream))
    return bytes(audio), "".join(text)


@contextlib.asynccontextmanager
async def realtime_model(**proxy: Any) -> AsyncIterator[tuple[RealtimeModel, Sent]]:
    """The plugin's model against :func:`watched_proxy` (``proxy``: what it takes), and what the
    proxy sent; closed after."""
    async with watched_proxy(**proxy) as (base_url, sent), aiohttp.ClientSession() as http:
        model = RealtimeModel(base_url=base_url.replace("ws://", "http://", 1), api_key=KEY,
                              http_session=http)
        try:
            yield model, sent
        finally:
            await model.aclose()


@contextlib.asynccontextmanager
async def livekit_agent(*, turn_detection_disabled: bool = False, **proxy: Any) -> AsyncIterator[Agent]:
    """``proxy``: what :func:`watched_proxy` takes."""
    async with realtime_model(**proxy) as (model, sent):
        session = model.session(turn_detection_disabled=turn_detection_disabled)
        try:
            yield Agent(session, sent)
        finally:
            await session.aclose()


def replied(reply: tuple[bytes, str]) -> bool:
    audio, text = reply
    return bool(audio) and bool(text)


class Microphone(io.AudioInput):
    """The session's audio input: frames the test puts in."""

    def __init__(self) -> None:
        super().__init__(label="test microphone")
        self.frames: asyncio.Queue[rtc.AudioFrame] = asyncio.Queue()

    async def __anext__(self) -> rtc.AudioFrame:
        return await self.frames.get()

    async def say(self, pcm: bytes) -> None:
        start = asyncio.get_running_loop().time()
        step = FRAME_SAMPLES * 2
        for i in range(0, len(pcm), step):
            piece = pcm[i:i + step]
            self.frames.put_nowait(rtc.AudioFrame(piece, RATE_HZ, 1, len(piece) // 2))
            await at_real_time(start, (i + step) / (RATE_HZ * 2))


class Speaker(io.AudioOutput):
    """The session's audio output: keeps what it is given, played out at once."""

    def __init__(self) -> None:
        super().__init__(label="test speaker", capabilities=io.AudioOutputCapabilities(pause=False),
                         sample_rate=RATE_HZ)
        self.audio = bytearray()
        self.playing = asyncio.Event()  # audio of a reply has come since its start
        self._segment_bytes = 0

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        self.audio.extend(frame.data.tobytes())
        self._segment_bytes += len(frame.data.tobytes())
        self.playing.set()

    def flush(self) -> None:
        super().flush()
        self._finished(interrupted=False)

    def clear_buffer(self) -> None:
        self._finished(interrupted=True)  # it played what it was given, as it came

    def _finished(self, *, interrupted: bool) -> None:
        position_s = self._segment_bytes / 2 / RATE_HZ
        self._segment_bytes = 0
        self.playing.clear()
        self.on_playback_finished(playback_position=position_s if interrupted else 0.0,
                                  interrupted=interrupted)


@dataclass
class SpeakingSession:
    """An ``AgentSession`` with the plugin as its LLM, the test's microphone and speaker as its
    audio, and what it said: its assistant items as they come, its errors, the proxy's events."""

    session: AgentSession[None]
    microphone: Microphone
    speaker: Speaker
    sent: Sent
    replies: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    errors: list[Any] = field(default_factory=list)


@contextlib.asynccontextmanager
async def agent_session(**proxy: Any) -> AsyncIterator[SpeakingSession]:
    """No room, so no LiveKit server; ``proxy``: what :func:`watched_proxy` takes."""
    async with realtime_model(**proxy) as (model, sent):
        session: AgentSession[None] = AgentSession(llm=model)
        it = SpeakingSession(session, Microphone(), Speaker(), sent)
        session.input.audio, session.output.audio = it.microphone, it.speaker
        session.on("error", it.errors.append)
        session.on("conversation_item_added", lambda ev: it.replies.put_nowait(ev.item)
                   if getattr(ev.item, "role", None) == "assistant" else None)
        await session.start(agent=LiveKitAgent(instructions="Answer briefly."))
        try:
            yield it
        finally:
            await session.aclose()
