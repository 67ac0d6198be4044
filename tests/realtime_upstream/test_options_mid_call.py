"""Options a conversation changes after its first audio, through two proxies: the outer proxy's
upstream (the Realtime kind) takes them mid-call, the inner proxy's (MiniCPM-o, the simulator)
only at the start.

A Realtime client's new instructions after its first turn reach the inner server as a
``session.update`` and its next ``session.updated`` shows them; the inner proxy, whose kind keeps
them, shows the old ones and logs why; a native client's ``config`` after its first turn is
applied (``config_applied``) in front of the Realtime kind, and refused with the error it always
got in front of MiniCPM-o. An update the Realtime server refuses is an ``error`` to the client
(Realtime: naming its ``session.update``; native: ``bad_payload``), and the call goes on.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from asgi_audio_proxy.dialects.native_client import ConfigAppliedMessage, ErrorMessage, TurnEndMessage
from tests.clients import ProxyClient
from tests.dialects.test_realtime_sdk import sdk_connection
from tests.signals import silence, tone

from .support import chain

UTTERANCE = tone(440, 1.0) + silence(1.4)
_KEPT = "after the first audio are not applied"


def updates_with(instructions: str, *, sent: bool) -> Any:
    """A :meth:`FrameLog.wait_for` condition: a session update (``sent``: answered) with them."""
    kind = "session.updated" if sent else "session.update"
    return lambda log: [e for e in log.of(kind, sent=sent) if e["session"]["instructions"] == instructions]


async def test_new_instructions_mid_call_reach_the_realtime_server_and_are_shown(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asgi_audio_proxy")
    async with chain() as c, sdk_connection(f"ws://127.0.0.1:{c.outer_port}/v1", beta=False) as talk:
        assert (await talk.next())["type"] == "session.created"
        await talk.conn.session.update(session={"type": "realtime", "instructions": "Answer briefly."})
        assert (await talk.until("session.updated"))["session"]["instructions"] == "Answer briefly."
        done, _, _ = await talk.turn()
        assert done["response"]["status"] == "completed"
        assert not [r for r in caplog.records if _KEPT in r.getMessage()]

        await talk.conn.session.update(session={"type": "realtime", "instructions": "Be verbose."})
        updated = await talk.until("session.updated")
        assert updated["session"]["instructions"] == "Be verbose."  # the outer kind applied them
        # they went to the inner server as a session update of its own, after the first audio ...
        await c.inner.wait_for(updates_with("Be verbose.", sent=False))
        received = c.inner.received_types()
        last_update = len(received) - 1 - received[::-1].index("session.update")
        assert received.index("input_audio_buffer.append") < last_update
        # ... which the inner proxy, whose model takes them at the start only, answered with the
        # instructions still in effect there, saying why in its log
        await c.inner.wait_for(lambda log: len(log.of("session.updated", sent=True)) >= 3)
        assert c.inner.of("session.updated", sent=True)[-1]["session"]["instructions"] == "Answer briefly."
        [kept] = [r for r in caplog.records if _KEPT in r.getMessage()
                  and r.name == "asgi_audio_proxy.dialects.realtime"]
        assert "when the conversation opens only" in kept.getMessage()

        done, audio, _ = await talk.turn()  # the conversation goes on
        assert done["response"]["status"] == "completed" and audio
    assert "error" not in [event["type"] for event in talk.events]


async def test_new_instructions_mid_call_in_front_of_minicpm_keep_the_old_ones(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asgi_audio_proxy")
    async with chain() as c:
        inner_base = c.inner_url.replace("http://", "ws://") + "/v1"
        async with sdk_connection(inner_base, beta=False) as talk:
            assert (await talk.next())["type"] == "session.created"
            await talk.conn.session.update(session={"type": "realtime", "instructions": "Answer briefly."})
            assert (await talk.until("session.updated"))["session"]["instructions"] == "Answer briefly."
            await talk.turn()
            await talk.conn.session.update(session={"type": "realtime", "instructions": "Be verbose."})
            assert (await talk.until("session.updated"))["session"]["instructions"] == "Answer briefly."
            # a later update asking for what is in effect needs nothing applied
            await talk.conn.session.update(session={"type": "realtime", "instructions": "Answer briefly."})
            assert (await talk.until("session.updated"))["session"]["instructions"] == "Answer briefly."
        assert "error" not in [event["type"] for event in talk.events]
    logged = [r.getMessage() for r in caplog.records if _KEPT in r.getMessage()]
    assert logged and all("['assistantPrompt']" in line for line in logged), logged


async def test_a_native_config_mid_call_is_applied_by_the_realtime_kind() -> None:
    async with chain() as c, ProxyClient(c.url("/audio_proxy")) as client:
        assert (await client.say(UTTERANCE)).ending == TurnEndMessage("complete")
        await client.conn.send(json.dumps({"type": "config", "assistantPrompt": "Be verbose."}))
        assert await client.next_message() == ConfigAppliedMessage()
        await c.inner.wait_for(updates_with("Be verbose.", sent=False))
        assert (await client.say(UTTERANCE)).ending == TurnEndMessage("complete")


async def test_a_native_config_mid_call_in_front_of_minicpm_is_refused_as_before() -> None:
    async with chain() as c, ProxyClient(c.inner_url.replace("http://", "ws://") + "/audio_proxy") as client:
        assert (await client.say(UTTERANCE)).ending == TurnEndMessage("complete")
        await client.conn.send(json.dumps({"type": "config", "assistantPrompt": "Be verbose."}))
        assert await client.next_message() == ErrorMessage(
            "policy_violation", 1008, "config must be sent before the first audio")
        assert (await client.say(UTTERANCE)).ending == TurnEndMessage("complete")  # it goes on


async def test_new_instructions_mid_call_the_realtime_server_refuses_are_an_error_and_the_call_goes_on(
        ) -> None:
    inner = {"client_option_keys": ("vadThreshold",)}  # the inner proxy's operator keeps the prompt
    async with chain(inner=inner) as c, \
            sdk_connection(f"ws://127.0.0.1:{c.outer_port}/v1", beta=False) as talk:
        assert (await talk.next())["type"] == "session.created"
        done, _, _ = await talk.turn()
        assert done["response"]["status"] == "completed"
        await talk.conn.session.update(event_id="evt_verbose",
                                       session={"type": "realtime", "instructions": "Be verbose."})
        while (event := await talk.next())["type"] != "error":
            assert event["type"] != "session.updated", event
        assert (event["error"]["event_id"], event["error"]["code"]) == ("evt_verbose", "bad_payload")
        assert "refused" in event["error"]["message"]
        [refused] = [e for e in c.inner.of("error", sent=True)
                     if e["error"]["param"] == "session.instructions"]
        assert refused["error"]["event_id"].startswith("proxy_update_")
        done, audio, _ = await talk.turn()  # the conversation goes on
        assert done["response"]["status"] == "completed" and audio


async def test_a_native_config_mid_call_the_realtime_server_refuses_is_an_error() -> None:
    async with chain(inner={"client_option_keys": ("vadThreshold",)}) as c, \
            ProxyClient(c.url("/audio_proxy")) as client:
        assert (await client.say(UTTERANCE)).ending == TurnEndMessage("complete")
        await client.conn.send(json.dumps({"type": "config", "assistantPrompt": "Be verbose."}))
        error = await client.next_message()
        assert isinstance(error, ErrorMessage) and error.kind == "bad_payload", error
        assert "refused" in error.message
        assert (await client.say(UTTERANCE)).ending == TurnEndMessage("complete")
