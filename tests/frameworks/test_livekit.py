"""LiveKit Agents' OpenAI plugin (``RealtimeModel(...).session()``, its current release) against
the proxy in front of the simulator, headless on loopback (no LiveKit server: the session is driven
directly, as ``AgentSession`` drives it): two spoken turns under its default ``semantic_vad``, with
manual turns (``commit_audio`` + ``generate_reply``, and a reply interrupted and truncated), with
``update_instructions`` after the first audio, after ``update_chat_ctx``, and after a
``generate_reply`` asked over silence. After each: no error from the proxy, audio and text in every
reply. Then an ``AgentSession`` with the plugin as its LLM, its audio input and output set to a
microphone and a speaker of the test's own (no room, so no LiveKit server): two turns, and a reply
talked over. Skipped without the ``frameworks`` extra."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from tests.timing import within

pytestmark = pytest.mark.skipif(importlib.util.find_spec("livekit") is None,
                                reason="needs the 'frameworks' extra")


async def test_default_semantic_vad_two_turns(speech: list[bytes]) -> None:
    from .livekit_parts import livekit_agent, replied

    async with livekit_agent() as agent:
        for question in speech:
            assert replied(await agent.turn(question))
        assert not agent.errors and not agent.sent.errors


async def test_manual_turns_commit_and_generate_reply(speech: list[bytes]) -> None:
    from .livekit_parts import heard, livekit_agent, replied

    async with livekit_agent(turn_detection_disabled=True) as agent:
        for question in speech:
            await agent.say(question)
            agent.session.commit_audio()
            async with asyncio.timeout(within(10)):
                generation = await agent.session.generate_reply()  # fails at 10 s without its metadata
            assert generation.user_initiated
            assert replied(await heard(generation))
        assert not agent.errors and not agent.sent.errors


async def test_manual_turns_interrupt_and_truncate_a_reply_then_take_the_next_turn(
        speech: list[bytes]) -> None:
    """What an ``AgentSession`` with turns of its own does when the user talks over a reply:
    ``interrupt()`` (``response.cancel``) and ``truncate`` where the audio stopped, at its first
    frame; both are taken, and the next turn gets its reply."""
    from .livekit_parts import heard, livekit_agent, replied

    first, second = speech
    async with livekit_agent(turn_detection_disabled=True, chunk_delay_s=0.45) as agent:
        await agent.say(first)
        agent.session.commit_audio()
        async with asyncio.timeout(within(20)):
            generation = await agent.session.generate_reply()
            message = await anext(aiter(generation.message_stream))
            frame = await anext(aiter(message.audio_stream))
        agent.session.interrupt()
        played_ms = frame.samples_per_channel * 1000 // frame.sample_rate
        agent.session.truncate(message_id=message.message_id, modalities=["audio"], audio_end_ms=played_ms)
        await agent.say(second)
        agent.session.commit_audio()
        async with asyncio.timeout(within(10)):
            generation = await agent.session.generate_reply()
        assert replied(await heard(generation))
        assert [status for status, _ in agent.sent.ends] == ["cancelled", "completed"], agent.sent.ends
        truncated = [e for e in agent.sent.events if e["type"] == "conversation.item.truncated"]
        assert [(e["item_id"], e["audio_end_ms"]) for e in truncated] == [(message.message_id, played_ms)]
        assert not agent.errors and not agent.sent.errors


async def test_update_instructions_after_the_first_audio(speech: list[bytes]) -> None:
    from .livekit_parts import livekit_agent, replied

    async with livekit_agent() as agent:
        assert replied(await agent.turn(speech[0]))
        await agent.session.update_instructions("Answer in one short sentence.")
        assert replied(await agent.turn(speech[1]))
        assert not agent.errors and not agent.sent.errors


async def test_update_chat_ctx_then_two_turns(speech: list[bytes]) -> None:
    from .livekit_parts import livekit_agent, llm, replied

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
    from .livekit_parts import RATE_HZ, heard, livekit_agent, replied, silence

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


async def test_agent_session_with_the_plugin_as_its_llm_two_turns(speech: list[bytes]) -> None:
    from .livekit_parts import RATE_HZ, agent_session, silence

    async with agent_session() as it:
        for question in speech:
            heard_before = len(it.speaker.audio)
            await it.microphone.say(question + silence(1.4, RATE_HZ))
            async with asyncio.timeout(within(20)):
                reply = await it.replies.get()
            assert reply.text_content and len(it.speaker.audio) > heard_before
        assert not it.errors and not it.sent.errors


async def test_agent_session_talked_over_stops_the_reply_and_answers_the_words(speech: list[bytes]) -> None:
    """The plugin's default ``semantic_vad``, the proxy's default ``barge_in``: the second
    question 0.4 s into the first reply. The reply ends cancelled, by the proxy's cut
    (``turn_detected``) or by the session's own ``response.cancel`` on ``speech_started``,
    whichever comes first; the other one's cancel, too late, gets OpenAI's "Cancellation failed"
    error, which the plugin ignores by its text, and nothing else is an error. The question gets a
    reply of its own."""
    from .livekit_parts import RATE_HZ, agent_session, silence

    first, second = speech
    async with agent_session(chunk_delay_s=0.45) as it:
        await it.microphone.say(first + silence(1.4, RATE_HZ))
        async with asyncio.timeout(within(20)):
            await it.speaker.playing.wait()
        await it.microphone.say(silence(0.4, RATE_HZ) + second + silence(1.4, RATE_HZ))
        async with asyncio.timeout(within(30)):
            while [status for status, _ in it.sent.ends] != ["cancelled", "completed"]:
                reply = await it.replies.get()
        assert it.sent.ends[0][1] in ("turn_detected", "client_cancelled"), it.sent.ends
        assert reply.text_content
        assert not it.errors
        late_cancels = [e for e in it.sent.errors if e["error"]["message"].startswith("Cancellation failed")]
        assert late_cancels == it.sent.errors, it.sent.errors
