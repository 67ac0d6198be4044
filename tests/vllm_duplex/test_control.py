"""The vllm-duplex kind's control of its server: a stop, the slots, a dropped socket resumed, and
a session that cannot be resumed.

A stop mid-reply leaves the client with no reply audio 100 ms after it, reaches the model as
``response.cancel``, and is followed by ``playback.ack`` at no more than the client received.
Four slots: five clients, four served, one queued, never five sessions on the server. The
server dropping the socket mid-conversation is resumed (the client sees nothing, the next turn
is answered), also when the reply was in the journal, not yet sent. A resume the server refuses
ends the conversation with an error that says so, and leaves the server in the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.dialects.native import StopControl
from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    ErrorMessage,
    ProxyMessage,
    QueuedMessage,
    ReadyMessage,
    TurnEndMessage,
    encode_control,
)
from tests.clients import FRAME_BYTES, ProxyClient, arrive
from tests.realtime_upstream.support import Microphone
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

from .support import duplex_proxy

UTTERANCE = tone(440, 1.0) + silence(0.6)
needs_speech = pytest.mark.skipif(espeak_missing_reason() is not None, reason=espeak_missing_reason() or "")


async def test_a_stop_mid_reply_cuts_the_audio_interrupts_the_model_and_acknowledges_what_played() -> None:
    loop = asyncio.get_running_loop()
    async with duplex_proxy(sim={"reply_units": 4}) as d, ProxyClient(d.url("/audio_proxy")) as client:
        sending = asyncio.create_task(client.send_paced(UTTERANCE))
        received = 0
        async with asyncio.timeout(within(15)):  # the first reply audio, then a stop at once
            while not isinstance(message := (await client.next_frame(15))[1], AudioMessage):
                pass
        received += len(message.pcm)
        await client.conn.send(encode_control(StopControl()))
        stopped_at = loop.time()
        late: list[float] = []
        events: list[ProxyMessage] = []
        with contextlib.suppress(TimeoutError):  # the reply had 3 s to go, a second at a time
            async with asyncio.timeout(within(1.5)):
                while True:
                    _, message = await client.next_frame(1.5)
                    if isinstance(message, AudioMessage):
                        received += len(message.pcm)
                        late += [loop.time() - stopped_at] if loop.time() - stopped_at > 0.1 else []
                    else:
                        events.append(message)
        await sending
        [sid] = d.session_ids
        await d.sim.recorder.wait_for(lambda r: bool(r.acks), timeout=within(5))
        acks = list(d.sim.recorder.acks)
        second = await client.say(tone(660, 1.0) + silence(0.6))
    assert late == []  # no reply audio reached the client 100 ms after its stop
    assert TurnEndMessage("stopped") in events
    [ack] = acks
    assert ack["truncate"] is True and 0 <= ack["played_ms"] <= received / 32  # never more than it got
    [cancel] = [e for _, e in d.sim.recorder.received if e["type"] == "response.cancel"]
    assert cancel["response_id"] == ack["response_id"]
    assert d.sim.recorder.interruptions == [(sid, "response.cancel")]
    assert second.ending == TurnEndMessage("complete") and second.text.startswith("Turn 2:")
    assert dominant_frequency_hz(bytes(second.audio)) == pytest.approx(660, abs=5)


async def test_four_slots_five_clients_four_served_one_queued_never_five_on_the_server() -> None:
    async with duplex_proxy(slots=4) as d, contextlib.AsyncExitStack() as stack:
        arrivals = []
        for _ in range(5):
            arrivals.append(await arrive(d.url("/audio_proxy")))
            stack.push_async_callback(arrivals[-1][0].__aexit__)
        assert [type(e) for _, e in arrivals] == [ReadyMessage] * 4 + [QueuedMessage]
        assert d.sim.recorder.live == 4 and d.sim.recorder.refused == 0
        served = arrivals[1][0]
        assert (await served.say(UTTERANCE)).text.startswith("Turn 1:")
        await arrivals[0][0].__aexit__()
        last = arrivals[4][0]
        await last.queued_then_ready(20)
        assert (await last.say(UTTERANCE)).text.startswith("Turn 1:")
    assert d.sim.recorder.most_live == 4 and len(d.sim.recorder.opened) == 5


@pytest.mark.parametrize("drop_at", [None, "response.created"], ids=["between-turns", "reply-in-journal"])
async def test_a_dropped_socket_is_resumed_and_the_client_sees_nothing(drop_at: str | None) -> None:
    async with duplex_proxy() as d, ProxyClient(d.url("/audio_proxy")) as client:
        first = await client.say(UTTERANCE)
        [sid] = d.session_ids
        if drop_at is None:
            await d.sim.drop()
        else:
            d.sim.table.drop_at = drop_at  # the next reply is journaled, not sent, then replayed
        second = await client.say(tone(660, 1.0) + silence(0.6))
        await d.sim.recorder.wait_for(lambda r: r.resumed == [sid], timeout=within(5))
    for n, turn in enumerate((first, second)):
        assert turn.ending == TurnEndMessage("complete"), turn.messages
        assert turn.text.startswith(f"Turn {n + 1}:")
        assert not [m for m in turn.messages if isinstance(m, ErrorMessage)]
    assert dominant_frequency_hz(bytes(second.audio)) == pytest.approx(660, abs=5)
    assert d.sim.recorder.drops == 1 and d.sim.recorder.opened == [sid]


async def test_a_session_the_server_cannot_resume_ends_with_an_error_that_says_so() -> None:
    async with duplex_proxy() as d:
        async with ProxyClient(d.url("/audio_proxy")) as client:
            await client.say(UTTERANCE)
            await d.sim.drop(forget=True)  # as if its grace had run out before the resume
            async with asyncio.timeout(within(10)):
                while not isinstance(error := (await client.next_frame(10))[1], ErrorMessage):
                    pass
            with pytest.raises(ConnectionClosed) as closed:
                await client.conn.recv()
        # a conversation of the server ended, not the server: the next client is served at once
        async with ProxyClient(d.url("/audio_proxy")) as again:
            assert (await again.say(UTTERANCE)).text.startswith("Turn 1:")
    assert "could not be resumed" in error.message and "session_resume_expired" in error.message
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


@needs_speech
async def test_speech_over_a_reply_barges_in_and_acknowledges_what_played(tmp_path: Path) -> None:
    samples = SpeechBank(tmp_path).utterance("Wait, stop please, I have a question.").samples
    words = to_pcm(0.5 * samples / np.abs(samples).max())
    async with duplex_proxy(sim={"reply_units": 6}, barge_in="voice") as d, \
            ProxyClient(d.url("/audio_proxy")) as client, asyncio.TaskGroup() as tg:
        mic = Microphone(client.conn.send, 16_000, FRAME_BYTES)
        mic.say(tone(440, 1.0) + silence(0.6))
        streaming = tg.create_task(mic.stream())
        messages: list[ProxyMessage] = []
        received = 0
        async with asyncio.timeout(within(20)):
            while not (messages and messages[-1] == TurnEndMessage("stopped")):
                _, message = await client.next_frame(20)
                if isinstance(message, AudioMessage):
                    if not received:
                        asyncio.get_running_loop().call_later(0.4, mic.say, words + silence(1.0))
                    received += len(message.pcm)
                    continue
                messages.append(message)
        await d.sim.recorder.wait_for(lambda r: bool(r.interruptions and r.acks), timeout=within(5))
        streaming.cancel()
    [sid] = d.session_ids
    assert d.sim.recorder.interruptions == [(sid, "barge_in")]
    [ack] = d.sim.recorder.acks
    assert ack["truncate"] is True and 300 <= ack["played_ms"] <= received / 32
