"""Pipecat's ``OpenAIRealtimeLLMService`` (its current release) against the proxy in front of the
simulator, headless on loopback: two spoken turns under the server's VAD, with
``turn_detection`` off and local turns, and with the bot speaking first (an empty context, a
system message, and the service's ``system_instruction``, which must reach the model as its
prompt). After each: no fatal ``error`` (Pipecat ends its receive loop on one), the loop
still running, audio and text in every reply. Skipped without the ``frameworks`` extra."""

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
