"""Every entry the real model server's code is reached through: two native clients queued on
one server, the ``openai`` SDK on ``/v1/realtime`` and a phone call on ``/twilio``, all through
``asgi-audio-proxy serve`` in front of ``shared/real_upstream`` (its stand-in model replies
``Turn N: heard ...`` with a 600 Hz tone at 24 kHz).

Needs ``MINICPM_GIT_DIR`` and the kit, like ``tests/test_real_upstream.py``; skipped otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from asgi_audio_proxy.audio.g711 import ulaw_to_pcm16
from asgi_audio_proxy.dialects.native_client import ReadyMessage, TurnEndMessage
from tests.clients import ProxyClient, at_real_time
from tests.dialects.realtime_support import GA_EVENTS
from tests.dialects.twilio_peer import TwilioPeer
from tests.signals import dominant_frequency_hz, silence, tone
from tests.test_real_upstream import pytestmark as real_upstream_marks
from tests.test_real_upstream import real_stack
from tests.timing import within

pytestmark = real_upstream_marks
UTTERANCE_16K = tone(440, 1.5) + silence(1.6)


async def test_two_clients_on_one_server_each_hear_only_their_own_turn() -> None:
    async with real_stack() as url, ProxyClient(url) as first, \
            ProxyClient(url, expect_ready=False) as second:
        assert await second.next_position() == 1
        turn = await first.say(UTTERANCE_16K, timeout_s=30)
        assert turn.ending == TurnEndMessage("complete")
        assert turn.text.startswith("Turn 1: heard")
        await first.conn.close()
        assert isinstance(await second.next_message(timeout_s=30), ReadyMessage)
        again = await second.say(UTTERANCE_16K, timeout_s=30)
    # a conversation of its own: the model counts its replies from one again, and only one came
    assert again.ending == TurnEndMessage("complete")
    assert again.text.startswith("Turn 1: heard") and again.text.count("Turn") == 1
    assert dominant_frequency_hz(bytes(again.audio)) == pytest.approx(600, abs=5)


async def test_the_openai_sdk_talks_to_the_real_server_through_v1_realtime() -> None:
    rate = 24_000
    utterance = tone(440, 1.5, rate) + silence(1.6, rate)
    async with real_stack() as url:
        base = url.removesuffix("/audio_proxy") + "/v1"
        from openai import AsyncOpenAI  # imported here: 1 s of every worker's collection

        client = AsyncOpenAI(api_key="unused", websocket_base_url=base, base_url="http://127.0.0.1:9/v1")
        audio, transcript = bytearray(), []
        async with client.realtime.connect(model="minicpm-o") as conn:

            async def speak() -> None:
                start = asyncio.get_running_loop().time()
                step = rate * 2 // 10
                for i in range(0, len(utterance), step):
                    await conn.input_audio_buffer.append(
                        audio=base64.b64encode(utterance[i:i + step]).decode())
                    await at_real_time(start, (i + step) / (rate * 2))

            done: dict[str, Any] = {}
            async with asyncio.timeout(within(40)), asyncio.TaskGroup() as tg:
                tg.create_task(speak())
                while True:
                    event: dict[str, Any] = json.loads(await conn.recv_bytes())
                    GA_EVENTS.validate_python(event, strict=True)
                    assert event["type"] != "error", event
                    if event["type"] == "response.output_audio.delta":
                        audio += base64.b64decode(event["delta"])
                    elif event["type"] == "response.output_audio_transcript.delta":
                        transcript.append(event["delta"])
                    elif event["type"] == "response.done":
                        done = event
                        break
        await client.close()
    assert done["response"]["status"] == "completed"
    assert "".join(transcript).startswith("Turn 1: heard")
    assert dominant_frequency_hz(bytes(audio), rate) == pytest.approx(600, abs=5)


async def test_a_phone_call_talks_to_the_real_server_through_twilio() -> None:
    rate = 8_000
    async with real_stack() as url:
        twilio = url.removesuffix("/audio_proxy") + "/twilio"
        async with TwilioPeer.call(twilio) as peer:
            peer.say(tone(440, 1.5, rate) + silence(1.6, rate))
            # the stand-in's reply: 3 chunks of 600 Hz, about 1.5 s at 8 kHz once played
            await peer.wait_for(lambda p: len(p.received_ulaw()) >= rate, timeout_s=40)
            await peer.wait_for(lambda p: len(p.echoed_marks) == len(p.of("mark")))
            pcm = ulaw_to_pcm16(peer.received_ulaw())
            await peer.stop()
            await peer.wait_for(lambda p: p.close_code is not None)
    assert dominant_frequency_hz(pcm, rate) == pytest.approx(600, abs=5)
    assert peer.close_code == 1000
