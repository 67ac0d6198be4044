"""The vllm-duplex kind end to end: clients of every dialect talk to the proxy, whose upstream is
the vLLM-Omni duplex simulator.

A native client has two turns; the ``openai`` SDK and a phone call have one each: each reply at
its dialect's rate, with the model's text. The proxy keeps the model's input flowing with
silence while the client says nothing, heartbeats, and closes the session when the client goes.
"""

from __future__ import annotations

import re

import pytest

from asgi_audio_proxy.audio.g711 import ulaw_to_pcm16
from asgi_audio_proxy.dialects.native_client import ReadyMessage, TurnEndMessage
from tests.clients import ProxyClient
from tests.dialects.test_realtime_sdk import sdk_connection
from tests.dialects.twilio_peer import TwilioPeer
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within

from .support import duplex_proxy

#: a turn at 16 kHz: a second of sound, then quiet (the proxy's silence covers the rest)
UTTERANCE = tone(440, 1.0) + silence(0.6)
#: what the model says it heard of a 1 s utterance. It hears in 1 s units, and where the
#: utterance falls against them is not the client's to choose (the second starts wherever the
#: silence kept flowing between turns ended): a unit boundary inside it loses up to a VAD
#: window and its minimum speech on one side, and pads each piece on the other
HEARD_S = (0.8, 1.6)


def heard_s(text: str, turn: int) -> float:
    """The seconds of speech the simulated model's reply text says it heard in its ``turn``."""
    said = re.fullmatch(rf"Turn {turn}: heard (\d+\.\d) s of speech\.", text)
    assert said is not None, text
    return float(said.group(1))


async def test_a_native_client_has_two_turns() -> None:
    async with duplex_proxy(kind={"heartbeat_interval_s": 0.3}) as d:
        async with ProxyClient(d.url("/audio_proxy"), expect_ready=False) as client:
            ready = await client.next_message()
            assert isinstance(ready, ReadyMessage) and ready.upstream_version == "openbmb/MiniCPM-o-4_5"
            turns = [await client.say(UTTERANCE), await client.say(tone(660, 1.0) + silence(0.6))]
        [stats] = await d.ended.wait(1)
        await d.sim.recorder.wait_for(lambda r: len(r.closed) == 1, timeout=within(5))
    recorder = d.sim.recorder
    [sid] = d.session_ids
    reply_s: list[int] = []
    for n, (turn, freq) in enumerate(zip(turns, (440, 660), strict=True)):
        assert turn.ending == TurnEndMessage("complete")
        heard = heard_s(turn.text, n + 1)
        assert HEARD_S[0] <= heard <= HEARD_S[1], turn.text
        assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(freq, abs=5)
        # whole seconds of reply at 16 kHz (and the resampler's tail, under 10 ms), as many as
        # the whole seconds heard (at least one; the text rounds to 0.1 s)
        reply_s.append(round(len(turn.audio) / 32_000))
        assert abs(len(turn.audio) - 32_000 * reply_s[-1]) <= 320
        assert abs(reply_s[-1] - max(1.0, heard)) <= 0.55, (turn.text, len(turn.audio))
    assert stats.balanced and stats.replies == 2 and stats.sent_bytes == stats.received_bytes > 0
    assert recorder.closed == [sid]  # session.close, answered, as the client left
    types = recorder.types(sid)
    assert types[-1] == "session.close" and "session.heartbeat" in types and "session.event_ack" in types
    # the model heard more than the client said: the silence that kept its input flowing
    assert len(recorder.audio[sid]) > stats.sent_bytes
    # the first reply acknowledged as played in full; the second as far as it got when the client left
    first, second = (sorted({a["response_id"] for a in recorder.acks}, key=[
        a["response_id"] for a in recorder.acks].index))
    assert [a["played_ms"] for a in recorder.acks if a["response_id"] == first][-1] == 1000 * reply_s[0]
    assert 0 <= [a["played_ms"] for a in recorder.acks if a["response_id"] == second][-1] <= 1000 * reply_s[1]


async def test_the_openai_sdk_has_a_turn() -> None:
    async with duplex_proxy() as d, sdk_connection(f"ws://127.0.0.1:{d.port}/v1", beta=False) as talk:
        assert (await talk.next())["type"] == "session.created"
        done, audio, transcript = await talk.turn()  # every event checked against the SDK's types
    assert done["response"]["status"] == "completed"
    assert transcript.startswith("Turn 1: heard")
    assert dominant_frequency_hz(audio, 24_000) == pytest.approx(440, abs=5)
    assert audio and len(audio) % 48_000 == 0  # whole seconds at 24 kHz, as the model made them


async def test_a_phone_call_has_a_turn() -> None:
    async with duplex_proxy() as d, TwilioPeer.call(d.url("/twilio")) as peer:
        peer.say(tone(440, 1.0, 8_000) + silence(0.6, 8_000))
        await peer.wait_for(lambda p: len(p.received_ulaw()) >= 8_000, timeout_s=15)
        pcm = ulaw_to_pcm16(peer.received_ulaw())
        await peer.stop()
    assert dominant_frequency_hz(pcm[:16_000], 8_000) == pytest.approx(440, abs=5)
    assert d.sim.recorder.opened
