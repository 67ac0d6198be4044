"""The ``minicpm-demo`` kind end to end: clients of every dialect talk to the proxy, whose upstream
is the gateway simulator; every frame the adapter sent the gateway is checked against the
protocol's schema.

A native client, the ``openai`` SDK and a phone call have two turns each, at their dialect's
rate; a client's stop cuts a reply (no reply audio reaches it 100 ms after the stop, and the
model got ``force_listen``); a second client waits in the proxy's queue, with its place and ETA,
while the gateway is busy; a client whose conversation the gateway queues behind another user's
keeps its place there, hears it (and each update) as the proxy's own ``queued`` (the ``openai``
SDK: its ``session.created``, and what it sent meanwhile answered after), then talks, on one
connection to the gateway; it waits ``max_queue_wait_s`` at most, and one that leaves gives its
place there up; the gateway's full context and its time limit reach the client with 1013.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.audio.g711 import ulaw_to_pcm16
from asgi_audio_proxy.config import DEFAULT_ASSISTANT_PROMPT, ProxyConfig
from asgi_audio_proxy.dialects.native_client import ErrorMessage, QueuedMessage, ReadyMessage, TurnEndMessage
from asgi_audio_proxy.dialects.realtime import realtime_dialect
from asgi_audio_proxy.dialects.twilio import twilio_dialect
from asgi_audio_proxy.edge.middleware import AudioProxyMiddleware
from asgi_audio_proxy.simulator.minicpm_demo import TOKENS_PER_INPUT_S, DuplexModel
from asgi_audio_proxy.upstreams.minicpm_demo import DemoSettings, minicpm_demo_kind
from tests.clients import FRAME_BYTES, ProxyClient
from tests.dialects.test_realtime_sdk import not_found, sdk_connection
from tests.dialects.twilio_peer import TwilioPeer
from tests.realtime_upstream.support import Microphone
from tests.servers import serve_uvicorn
from tests.signals import dominant_frequency_hz, silence, tone
from tests.test_dialect_seam import Ended
from tests.timing import within
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

from .schema import check_client
from .support import Gateway, RawClient, gateway

UTTERANCE = tone(440, 1.0) + silence(1.4)
needs_speech = pytest.mark.skipif(espeak_missing_reason() is not None, reason=espeak_missing_reason() or "")


@dataclass
class Chain:
    gw: Gateway
    port: int
    ended: Ended = field(default_factory=Ended)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def check_frames(self) -> list[dict[str, Any]]:
        """Every frame the adapter sent, checked against the schema."""
        return [check_client(frame) for frame in self.gw.sim.recorder.frames]


@contextlib.asynccontextmanager
async def demo_chain(settings: DemoSettings | None = None, *, sim: dict[str, Any] | None = None,
                     **config: Any) -> AsyncIterator[Chain]:
    """The gateway simulator, and the proxy in front of it (native, Realtime, Twilio)."""
    async with gateway(**(sim or {})) as gw:
        ended = Ended()
        proxy = AudioProxyMiddleware(not_found, config=ProxyConfig(upstream_url=gw.url, **config),
                                     dialects={"/v1/realtime": realtime_dialect, "/twilio": twilio_dialect},
                                     kind=minicpm_demo_kind(settings), on_session_end=ended)
        try:
            async with serve_uvicorn(proxy) as port:
                yield Chain(gw, port, ended)
        finally:
            await proxy.proxy.aclose()


async def test_a_native_client_has_two_turns() -> None:
    async with demo_chain() as c:
        async with ProxyClient(c.url("/audio_proxy")) as client:
            assert client.proxy.upstream_version == "minicpm-o-4.5-demo"
            turns = [await client.say(UTTERANCE), await client.say(tone(660, 1.0) + silence(1.4))]
        [stats] = await c.ended.wait(1)
        await c.gw.sim.recorder.wait_for(lambda r: len(r.ended) == 1, timeout=within(5))
    for n, (turn, freq) in enumerate(zip(turns, (440, 660), strict=True)):
        assert turn.ending == TurnEndMessage("complete")
        assert turn.text.startswith(f"Turn {n + 1}: heard "), turn.text
        assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(freq, abs=5)  # 16 kHz
        assert len(turn.audio) / 32 == pytest.approx(1000, abs=60)  # the second of tone it heard
    assert turns[0].text == "Turn 1: heard 2.0 s of audio, 1.0 s of it sound."
    assert stats.balanced and stats.replies == 2 and stats.sent_bytes == stats.received_bytes > 0
    frames = c.check_frames()
    [update] = [f for f in frames if f["type"] == "session.update"]
    assert update["session"]["instructions"]
    appends = [f for f in frames if f["type"] == "input_audio_buffer.append"]
    assert all(len(a["audio"]) == 85_336 for a in appends)  # 1 s of float32: 64 000 bytes, base64
    assert frames[-1] == {"type": "session.close", "reason": "user_stop"}
    assert c.gw.sim.recorder.dropped == 0  # never faster than the model
    scope_query = c.gw.sim.recorder.sessions[0]
    assert scope_query == stats.session_id  # the gateway logs the proxy's session id


async def test_the_openai_sdk_has_two_turns() -> None:
    async with demo_chain() as c, sdk_connection(f"ws://127.0.0.1:{c.port}/v1", beta=False) as talk:
        assert (await talk.next())["type"] == "session.created"
        turns = [await talk.turn(), await talk.turn()]
    for n, (done, audio, transcript) in enumerate(turns):
        assert done["response"]["status"] == "completed"
        assert transcript.startswith(f"Turn {n + 1}: heard "), transcript
        assert dominant_frequency_hz(audio, 24_000) == pytest.approx(440, abs=5)
        assert len(audio) / 48 == pytest.approx(1000, abs=60)
    c.check_frames()


async def test_a_phone_call_has_two_turns() -> None:
    async with demo_chain() as c, TwilioPeer.call(c.url("/twilio")) as peer:
        heard: list[bytes] = []
        for freq in (440, 660):
            before = len(peer.received_ulaw())
            peer.say(tone(freq, 1.0, 8_000) + silence(1.4, 8_000))
            await peer.wait_for(lambda p, b=before: len(p.received_ulaw()) >= b + 7_900, timeout_s=20)
            heard.append(ulaw_to_pcm16(peer.received_ulaw()[before:]))
        await peer.stop()
    for pcm, freq in zip(heard, (440, 660), strict=True):
        assert dominant_frequency_hz(pcm, 8_000) == pytest.approx(freq, abs=5)  # 8 kHz
        assert len(pcm) / 2 == pytest.approx(8_000, abs=0.05 * 8_000)  # the second of tone it heard
    c.check_frames()


async def test_a_stop_mid_reply_cuts_it_within_100_ms_and_makes_the_model_listen() -> None:
    # the model takes 0.5 s per append: the stop comes while a piece of the reply is being made
    async with demo_chain(sim={"step_s": 0.5}) as c, ProxyClient(c.url("/audio_proxy")) as client:
        loop = asyncio.get_running_loop()
        arrivals: list[tuple[float, Any]] = []
        stopped_at: list[float] = []
        recorder = c.gw.sim.recorder

        async def stop_while_the_next_piece_is_made() -> None:
            [session] = recorder.sessions
            taken = len(recorder.appends[session])
            await recorder.wait_for(lambda r: len(r.appends[session]) > taken, timeout=within(5))
            await client.conn.send(json.dumps({"type": "stop"}))
            stopped_at.append(loop.time())

        async def read_until_turn(n: int, tg: asyncio.TaskGroup) -> None:
            stopping = None
            async with asyncio.timeout(within(25)):
                while True:
                    message = await client.conn.recv()
                    arrivals.append((loop.time(), message))
                    if isinstance(message, bytes) and stopping is None:
                        stopping = tg.create_task(stop_while_the_next_piece_is_made())
                    elif isinstance(message, str) and json.loads(message)["type"] == "turn_end":
                        n -= 1
                        if n == 0:
                            return

        async with asyncio.TaskGroup() as tg:
            tg.create_task(client.send_paced(tone(440, 3.0) + silence(1.4) + silence(2.0)
                                             + tone(660, 1.0) + silence(1.4)))
            tg.create_task(read_until_turn(2, tg))
        await recorder.wait_for(lambda r: sum(r.force_listens.values()) >= 1, timeout=within(5))
    events = [json.loads(m) for _, m in arrivals if isinstance(m, str)]
    ends = [e for e in events if e["type"] == "turn_end"]
    assert [e["reason"] for e in ends] == ["stopped", "complete"]
    [stop] = stopped_at
    second_text = next(t for t, m in arrivals if isinstance(m, str) and json.loads(m).get("content", "")
                       .startswith("Turn 2:"))
    late = [t - stop for t, m in arrivals if isinstance(m, bytes) and stop < t < second_text]
    assert all(delay <= within(0.1) for delay in late), late  # 100 ms on an idle machine
    # the model made a second piece of the first reply after the stop: none of it was played
    deltas = recorder.of("response.output_audio.delta")
    assert [d["audio"] for d in deltas[:2]] == [12_000, 24_000] and not deltas[1]["end_of_turn"]
    heard = sum(len(m) for t, m in arrivals if isinstance(m, bytes) and t < second_text)
    assert heard == 16_000  # the first piece alone: 0.5 s at 16 kHz
    frames = c.check_frames()
    assert sum(1 for f in frames if f.get("force_listen")) == 1


async def test_a_second_client_waits_in_the_proxys_queue_with_its_place_and_eta() -> None:
    async with demo_chain(max_queue=4) as c, ProxyClient(c.url("/audio_proxy")) as first:
        async with ProxyClient(c.url("/audio_proxy"), expect_ready=False) as second:
            queued = await second.next_message()
            assert isinstance(queued, QueuedMessage) and queued.position == 1 and queued.eta_s > 0
            await first.conn.close()
            assert isinstance(await second.next_message(15), ReadyMessage)
        assert not c.gw.sim.recorder.of("session.queued")  # the gateway itself never queued anyone
    c.check_frames()


async def test_a_native_client_the_gateway_queues_hears_its_place_there_then_talks() -> None:
    connect_timeout_s = within(0.5)
    # the wait outlasts the three connect timeouts a connect gets: a queued one gets more
    updates = math.ceil(3 * connect_timeout_s / 0.2) + 1
    sim = {"queue_update_s": 0.2, "expected_s": 30.0}
    async with demo_chain(connect_timeout_s=connect_timeout_s, sim=sim) as c, \
            RawClient.open(c.gw.ws_url()) as direct:
        await direct.start()  # another user of the gateway holds its only worker
        async with ProxyClient(c.url("/audio_proxy"), expect_ready=False) as client:
            first, update = await client.next_message(), await client.next_message()
            await c.gw.sim.recorder.wait_for(lambda r: len(r.of("session.queue_update")) >= updates,
                                             timeout=within(10))
            await direct.conn.close()
            places = 2
            while isinstance(message := await client.next_message(20), QueuedMessage):
                places += 1
            assert isinstance(message, ReadyMessage), message
            turn = await client.say(UTTERANCE)
        [stats] = await c.ended.wait(1)
    recorder = c.gw.sim.recorder
    [queued] = recorder.of("session.queued")
    assert isinstance(first, QueuedMessage) and isinstance(update, QueuedMessage)
    assert (first.position, first.eta_s) == (1, queued["estimated_wait_s"]) and queued["position"] == 1
    assert 25 < first.eta_s <= 30  # the gateway's estimate, not the proxy's pool's
    assert (update.position, update.eta_s) == (1, recorder.of("session.queue_update")[0]["estimated_wait_s"])
    assert places == 1 + len(recorder.of("session.queue_update")) >= 1 + updates  # one for each
    assert turn.ending == TurnEndMessage("complete") and turn.text.startswith("Turn 1: heard "), turn.text
    assert len(recorder.of("session.queue_done")) == 2  # the other user's and ours: one connection each
    assert recorder.sessions[1] == stats.session_id and stats.replies == 1
    c.check_frames()


async def test_the_openai_sdk_the_gateway_queues_gets_its_session_then_a_reply() -> None:
    async with demo_chain(sim={"queue_update_s": 0.2}) as c, RawClient.open(c.gw.ws_url()) as direct:
        await direct.start()
        recorder = c.gw.sim.recorder
        async with sdk_connection(f"ws://127.0.0.1:{c.port}/v1", beta=False) as talk:
            assert (await talk.next())["type"] == "session.created"  # at its first place there
            await talk.conn.session.update(session={"type": "realtime", "instructions": "Answer briefly."})
            await recorder.wait_for(lambda r: len(r.of("session.queue_update")) >= 2, timeout=within(5))
            assert len(recorder.sessions) == 1  # still queued: only the other user talks
            await direct.conn.close()
            await talk.until("session.updated")  # held while it waited, answered after
            done, audio, transcript = await talk.turn()
    assert done["response"]["status"] == "completed" and transcript.startswith("Turn 1: heard ")
    assert dominant_frequency_hz(audio, 24_000) == pytest.approx(440, abs=5)
    assert len(recorder.of("session.queued")) == 1 and len(recorder.of("session.queue_done")) == 2
    c.check_frames()


async def test_a_client_the_gateway_queues_waits_max_queue_wait_s_at_most() -> None:
    async with demo_chain(max_queue_wait_s=1.0, sim={"queue_update_s": 0.2}) as c, \
            RawClient.open(c.gw.ws_url()) as direct:
        await direct.start()
        async with ProxyClient(c.url("/audio_proxy"), expect_ready=False) as client:
            places = []
            while isinstance(message := await client.next_message(), QueuedMessage):
                places.append(message.eta_s)
            with pytest.raises(ConnectionClosed) as closed:
                await client.next_message()
        await c.gw.sim.recorder.wait_for(lambda r: c.gw.sim.queue.length == 0, timeout=within(5))
    assert places[0] == c.gw.sim.recorder.of("session.queued")[0]["estimated_wait_s"]
    assert isinstance(message, ErrorMessage), message
    assert (message.kind, message.code) == ("limit_exceeded", 1013)
    assert "the gateway gave the conversation no worker within 1 s" in message.message
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert len(c.gw.sim.recorder.of("session.queued")) == 1  # waited on one connection, no retry
    c.check_frames()


async def test_a_client_that_leaves_while_the_gateway_queues_it_gives_its_place_there_up() -> None:
    async with demo_chain(sim={"queue_update_s": 2.0}) as c, RawClient.open(c.gw.ws_url()) as direct:
        await direct.start()
        recorder = c.gw.sim.recorder
        async with ProxyClient(c.url("/audio_proxy"), expect_ready=False) as client:
            assert isinstance(await client.next_message(), QueuedMessage)
            assert c.gw.sim.queue.length == 1
        [stats] = await c.ended.wait(1)
        # the proxy read the client leave: no update from the gateway had to fail to reach it
        assert not recorder.of("session.queue_update")
        # the gateway reads nothing while it queues: it finds the socket closed at its next update
        await recorder.wait_for(lambda r: stats.session_id in r.ended, timeout=within(10))
        assert c.gw.sim.queue.length == 0
        assert len(recorder.sessions) == 1  # the other user's conversation goes on
    assert stats.close_code == 1000  # the client's own close, read while it waited
    assert len(recorder.received("session.update")) == 1  # the other user's: ours never started
    c.check_frames()


async def test_a_full_context_reaches_a_native_client_with_1013() -> None:
    prompt = DuplexModel().prepare(DEFAULT_ASSISTANT_PROMPT, has_ref_audio=False)
    # three appends of the silence the proxy sends while the client says nothing fill it
    async with demo_chain(sim={"context_tokens": prompt + 3 * TOKENS_PER_INPUT_S}) as c, \
            ProxyClient(c.url("/audio_proxy")) as client:
        turn = await client.read_turn(15)
        with pytest.raises(ConnectionClosed) as closed:
            await client.next_message()
    assert isinstance(turn.ending, ErrorMessage), turn.ending
    assert (turn.ending.kind, turn.ending.code) == ("context_full", 1013)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert len(c.gw.sim.recorder.of("response.listen")) == 3
    c.check_frames()


async def test_the_gateways_time_limit_reaches_a_realtime_client_with_1013() -> None:
    async with demo_chain(sim={"max_session_s": 2.0, "go_away_s": 1.0}) as c, connect(
            c.url("/v1/realtime"), open_timeout=within(10)) as conn:
        events = []
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(within(10)):
                while True:
                    events.append(json.loads(await conn.recv()))
    [error] = [e for e in events if e["type"] == "error"]
    assert error["error"]["code"] == "upstream_session_limit"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert c.gw.sim.recorder.of("session.closed")[0]["reason"] == "timeout"
    c.check_frames()


async def test_a_gateway_shutting_down_reaches_a_native_client_as_unavailable() -> None:
    async with demo_chain() as c, ProxyClient(c.url("/audio_proxy")) as client:
        c.gw.sim.close()
        turn = await client.read_turn(10)
        with pytest.raises(ConnectionClosed) as closed:
            await client.next_message()
    assert isinstance(turn.ending, ErrorMessage), turn.ending
    assert (turn.ending.kind, turn.ending.code) == ("upstream_unavailable", 1011)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    c.check_frames()


@needs_speech
async def test_speech_over_a_reply_cuts_it_and_makes_the_model_listen(tmp_path: Path) -> None:
    samples = SpeechBank(tmp_path).utterance("Wait, stop please, I have a question.").samples
    words = to_pcm(0.5 * samples / np.abs(samples).max())
    async with demo_chain(barge_in="voice") as c, ProxyClient(c.url("/audio_proxy")) as client, \
            asyncio.TaskGroup() as tg:
        mic = Microphone(client.conn.send, 16_000, FRAME_BYTES)
        mic.say(tone(440, 3.0) + silence(1.0))  # a reply of 3 s: still playing when the words come
        streaming = tg.create_task(mic.stream())
        kinds: list[str] = []
        async with asyncio.timeout(within(20)):
            while "stopped" not in kinds:
                message = await client.conn.recv()
                if isinstance(message, bytes):
                    if "audio" not in kinds:
                        asyncio.get_running_loop().call_later(0.4, mic.say, words + silence(1.0))
                        kinds.append("audio")
                    continue
                event = json.loads(message)
                kinds.append(event.get("reason") if event["type"] == "turn_end" else event["type"])
        streaming.cancel()
        await c.gw.sim.recorder.wait_for(lambda r: sum(r.force_listens.values()) >= 1, timeout=within(5))
    assert "speech_started" in kinds and kinds.index("audio") < kinds.index("stopped")
    assert kinds[-1] == "stopped"  # the proxy cut it, before the model stopped by itself
    c.check_frames()
