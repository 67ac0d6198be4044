"""LiveKit Agents' OpenAI plugin (``RealtimeModel(...).session()``, its current release) against the
proxy in front of the simulator, headless on loopback (no LiveKit server: the session is driven
directly, as ``AgentSession`` drives it): two spoken turns under its default ``semantic_vad``,
with manual turns (``commit_audio`` + ``generate_reply``), with ``update_instructions`` after the
first audio, after ``update_chat_ctx``, and after a ``generate_reply`` asked over silence. After
each: no error from the proxy, audio and text in every reply. Then an ``AgentSession`` with the
plugin as its LLM, its audio input and output set to a microphone and a speaker of the test's
own (no room, so no LiveKit server). Skipped without the ``frameworks`` extra."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("livekit.plugins.openai.realtime", reason="needs the 'frameworks' extra")

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
async def livekit_agent(*, turn_detection_disabled: bool = False) -> AsyncIterator[Agent]:
    async with watched_proxy() as (base_url, sent), aiohttp.ClientSession() as http:
        http_base = base_url.replace("ws://", "http://", 1)
        model = RealtimeModel(base_url=http_base, api_key=KEY, http_session=http)
        session = model.session(turn_detection_disabled=turn_detection_disabled)
        try:
            yield Agent(session, sent)
        finally:
            await session.aclose()
            await model.aclose()


def replied(reply: tuple[bytes, str]) -> bool:
    audio, text = reply
    return bool(audio) and bool(text)


async def test_default_semantic_vad_two_turns(speech: list[bytes]) -> None:
    async with livekit_agent() as agent:
        for question in speech:
            assert replied(await agent.turn(question))
        assert not agent.errors and not agent.sent.errors


async def test_manual_turns_commit_and_generate_reply(speech: list[bytes]) -> None:
    async with livekit_agent(turn_detection_disabled=True) as agent:
        for question in speech:
            await agent.say(question)
            agent.session.commit_audio()
            async with asyncio.timeout(within(10)):
                generation = await agent.session.generate_reply()  # fails at 10 s without its metadata
            assert generation.user_initiated
            assert replied(await heard(generation))
        assert not agent.errors and not agent.sent.errors


async def test_update_instructions_after_the_first_audio(speech: list[bytes]) -> None:
    async with livekit_agent() as agent:
        assert replied(await agent.turn(speech[0]))
        await agent.session.update_instructions("Answer in one short sentence.")
        assert replied(await agent.turn(speech[1]))
        assert not agent.errors and not agent.sent.errors


async def test_update_chat_ctx_then_two_turns(speech: list[bytes]) -> None:
    async with livekit_agent() as agent:
        ctx = llm.ChatContext.empty()
        ctx.add_message(role="system", content="You are a helpful assistant.")
        ctx.add_message(role="user", content="My name is Sam.")
        ctx.add_message(role="assistant", content="Nice to meet you, Sam.")
        await agent.session.update_chat_ctx(ctx)  # waits (5 s at most) for each item's acknowledgement
        # what the server acknowledged is what the plugin takes as its remote conversation
        assert {item.id for item in ctx.items} <= {item.id for item in agent.session.chat_ctx.items}
        for question in speech:
            assert replied(await agent.turn(question))
        assert not agent.errors and not agent.sent.errors


async def test_generate_reply_after_silence_ends_then_two_turns(speech: list[bytes]) -> None:
    async with livekit_agent() as agent:
        await agent.say(silence(1.0, RATE_HZ))
        async with asyncio.timeout(within(10)):
            generation = await agent.session.generate_reply()
        assert await agent.next_generation() is generation
        assert await heard(generation, timeout_s=5) == (b"", "")  # ended at once, nothing to say
        [failed] = agent.errors  # the failed response, recoverable: the session goes on
        assert failed.recoverable
        for question in speech:
            assert replied(await agent.turn(question))
        assert len(agent.errors) == 1 and not agent.sent.errors


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

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        self.audio.extend(frame.data.tobytes())

    def flush(self) -> None:
        super().flush()
        self.on_playback_finished(playback_position=0.0, interrupted=False)

    def clear_buffer(self) -> None:
        self.on_playback_finished(playback_position=0.0, interrupted=True)


async def test_agent_session_with_the_plugin_as_its_llm_two_turns(speech: list[bytes]) -> None:
    async with watched_proxy() as (base_url, sent), aiohttp.ClientSession() as http:
        model = RealtimeModel(base_url=base_url.replace("ws://", "http://", 1), api_key=KEY,
                              http_session=http)
        session: AgentSession[None] = AgentSession(llm=model)
        microphone, speaker = Microphone(), Speaker()
        session.input.audio, session.output.audio = microphone, speaker
        errors: list[Any] = []
        replies: asyncio.Queue[Any] = asyncio.Queue()
        session.on("error", errors.append)
        session.on("conversation_item_added",
                   lambda ev: replies.put_nowait(ev.item) if getattr(ev.item, "role", None) == "assistant"
                   else None)
        await session.start(agent=LiveKitAgent(instructions="Answer briefly."))
        try:
            for question in speech:
                heard_before = len(speaker.audio)
                await microphone.say(question + silence(1.4, RATE_HZ))
                async with asyncio.timeout(within(20)):
                    reply = await replies.get()
                assert reply.text_content and len(speaker.audio) > heard_before
            assert not errors and not sent.errors
        finally:
            await session.aclose()
            await model.aclose()
