"""Pipecat's ``OpenAIRealtimeLLMService`` (its current release) against the proxy in front of the
simulator, headless on loopback: two spoken turns under the server's VAD, with ``turn_detection``
off and local turns, and with the bot speaking first (an empty context, a system message, and the
service's ``system_instruction``, which must reach the model as its prompt); then talking over a
reply, under the server's VAD and with local turns. After each: no fatal ``error`` (Pipecat ends
its receive loop on one), the loop still running, audio and text in every reply. Skipped without
the ``frameworks`` extra."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="needs the 'frameworks' extra")


async def test_server_vad_two_turns(speech: list[bytes]) -> None:
    from .pipecat_bot import RATE_HZ, events, pipecat_bot, replies, silence, spoken

    async with pipecat_bot(events.SessionProperties()) as bot:
        for turn, question in enumerate(speech, 1):
            await bot.say(question + silence(1.4, RATE_HZ))
            await bot.replied(turn)
        assert all(spoken(reply) for reply in replies(bot.down.frames))
        bot.check_alive()


async def test_turn_detection_off_with_local_turns(speech: list[bytes]) -> None:
    from .pipecat_bot import (
        ProposedUserStartedSpeakingFrame,
        ProposedUserStoppedSpeakingFrame,
        UserStartedSpeakingFrame,
        UserStoppedSpeakingFrame,
        events,
        pipecat_bot,
        replies,
        spoken,
    )

    manual = events.SessionProperties(audio=events.AudioConfiguration(
        input=events.AudioInput(turn_detection=False)))
    async with pipecat_bot(manual) as bot:
        for turn, question in enumerate(speech, 1):
            await bot.push(UserStartedSpeakingFrame())
            await bot.say(question)
            await bot.push(UserStoppedSpeakingFrame())
            await bot.replied(turn)
        assert all(spoken(reply) for reply in replies(bot.down.frames))
        # the server's speech events would make Pipecat cut the reply and repeat the app's turns
        proposed = (ProposedUserStartedSpeakingFrame, ProposedUserStoppedSpeakingFrame)
        assert not [f for f in bot.up.frames + bot.down.frames if isinstance(f, proposed)]
        bot.check_alive()


INSTRUCTION = "You are a weather assistant. Answer in one sentence."


# a system message in the context is how Pipecat apps began until 1.9 (deprecated since, still
# common); the service's system_instruction, how they begin since
@pytest.mark.parametrize(("messages", "system_instruction"), [
    ([], None), ([{"role": "system", "content": "You are a helpful assistant."}], None), ([], INSTRUCTION)],
    ids=["empty-context", "system-message", "system-instruction"])
async def test_bot_speaks_first_then_two_turns(speech: list[bytes], messages: list[Any],
                                               system_instruction: str | None) -> None:
    from .pipecat_bot import (
        RATE_HZ,
        LLMContext,
        LLMContextFrame,
        events,
        pipecat_bot,
        replies,
        silence,
        spoken,
    )

    async with pipecat_bot(events.SessionProperties(), system_instruction) as bot:
        await bot.push(LLMContextFrame(context=LLMContext(messages=messages)))
        await bot.replied(1)  # the model cannot speak first: that response fails, and says why
        [first] = replies(bot.down.frames)
        assert not spoken(first)
        for turn, question in enumerate(speech, 2):
            await bot.say(question + silence(1.4, RATE_HZ))
            await bot.replied(turn)
        assert all(spoken(reply) for reply in replies(bot.down.frames)[1:])
        bot.check_alive()
        if system_instruction is not None:  # the model's prompt: the server's default at connect, then this
            assert bot.sent.model is not None
            told = bot.sent.model.recorder.options
            assert told and system_instruction in json.dumps(told[-1]), told


async def test_talking_over_the_reply_under_server_vad_cuts_it_and_pipecat_truncates_it(
        speech: list[bytes]) -> None:
    """The server's VAD, the proxy's default ``barge_in``: the second question 0.4 s into the
    first reply (a microphone open all along, as a transport's). Pipecat leaves the cut to the
    server (``interrupt_response``): the proxy ends that reply (``turn_detected``); Pipecat
    truncates it where its audio stopped, which the proxy takes (an ``error`` instead would end
    Pipecat's receive loop); the question gets a reply of its own."""
    from .pipecat_bot import RATE_HZ, events, pipecat_bot, replies, silence, speaking, spoken

    first, second = speech
    async with pipecat_bot(events.SessionProperties(), chunk_delay_s=0.45) as bot:
        await bot.say(first + silence(1.4, RATE_HZ))
        while not speaking(bot.down.frames, 1):
            await bot.say(silence(0.1, RATE_HZ))
        await bot.say(silence(0.4, RATE_HZ) + second + silence(1.4, RATE_HZ))
        await bot.down.until(lambda _: [s for s, _ in bot.sent.ends] == ["cancelled", "completed"])
        assert bot.sent.ends == [("cancelled", "turn_detected"), ("completed", None)]
        assert "conversation.item.truncated" in [e["type"] for e in bot.sent.events]
        assert spoken(replies(bot.down.frames)[-1])
        bot.check_alive()


async def test_an_interruption_with_local_turns_cancels_the_reply_and_the_next_turn_is_answered(
        speech: list[bytes]) -> None:
    """``turn_detection`` off: the app's own turn detection interrupts the first reply while it
    plays. Pipecat clears the input, cancels the response and truncates its item, then commits
    the new turn: each is taken, none answered with an ``error``, and the turn gets a reply."""
    from .pipecat_bot import (
        InterruptionFrame,
        UserStartedSpeakingFrame,
        UserStoppedSpeakingFrame,
        events,
        pipecat_bot,
        replies,
        speaking,
        spoken,
    )

    first, second = speech
    manual = events.SessionProperties(audio=events.AudioConfiguration(
        input=events.AudioInput(turn_detection=False)))
    async with pipecat_bot(manual, chunk_delay_s=0.45) as bot:
        await bot.push(UserStartedSpeakingFrame())
        await bot.say(first)
        await bot.push(UserStoppedSpeakingFrame())
        await bot.down.until(lambda frames: speaking(frames, 1))
        await bot.push(InterruptionFrame())
        await bot.push(UserStartedSpeakingFrame())
        await bot.say(second)
        await bot.push(UserStoppedSpeakingFrame())
        await bot.down.until(lambda _: [s for s, _ in bot.sent.ends] == ["cancelled", "completed"])
        assert bot.sent.ends == [("cancelled", "client_cancelled"), ("completed", None)]
        told = [e["type"] for e in bot.sent.events]
        assert {"input_audio_buffer.cleared", "conversation.item.truncated"} <= set(told), told
        assert spoken(replies(bot.down.frames)[-1])
        bot.check_alive()
