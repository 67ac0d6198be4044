"""The gateway simulator against a raw client, every event it sends checked against the schema:
a conversation (each append answered by one event, a reply in float32 24 kHz pieces), a cut with
``force_listen``, the queue with its positions and ETA, a full queue, the session cap, a full
context, a frame that is not JSON, the schema's violations, appends sent too fast, the close.
"""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.simulator.minicpm_demo import DuplexModel, Listened, Spoke, WorkerQueue
from tests.http_clients import http_client
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within

from .support import RawClient, gateway

SECOND = silence(1.0)


def samples_of(event: dict[str, object]) -> np.ndarray:
    audio = event["audio"]
    assert isinstance(audio, str)
    return np.frombuffer(base64.b64decode(audio), "<f4")


def as_pcm(samples: np.ndarray) -> bytes:
    return np.clip(np.rint(samples * 32768), -32768, 32767).astype("<i2").tobytes()


async def say_and_hear(client: RawClient, chunks: list[bytes]) -> list[dict[str, object]]:
    """One append per chunk, each answer read before the next append goes."""
    answers = []
    for chunk in chunks:
        await client.append(chunk)
        answers.append(await client.next())
    return answers


async def test_each_append_gets_one_answer_and_a_turn_is_a_reply_in_float32_pieces() -> None:
    async with gateway() as gw, RawClient.open(gw.ws_url("mode=audio&session_id=my_id-1")) as client:
        created = await client.start()
        assert created["session_id"] == "my_id-1" and created["prompt_length"] > 0
        answers = await say_and_hear(client, [SECOND, tone(440, 1.0), SECOND, SECOND, SECOND])
    kinds = [a["type"] for a in answers]
    assert kinds == ["response.listen", "response.listen", "response.output_audio.delta",
                     "response.output_audio.delta", "response.listen"]
    first, last = answers[2], answers[3]
    assert (first["end_of_turn"], last["end_of_turn"]) == (False, True)
    audio = np.concatenate([samples_of(first), samples_of(last)])
    assert len(samples_of(first)) == 12_000  # the first piece is 0.5 s
    assert len(audio) == pytest.approx(24_000, abs=24 * 25)  # the second of tone it heard
    assert dominant_frequency_hz(as_pcm(audio), 24_000) == pytest.approx(440, abs=5)
    text = str(first["text"]) + str(last["text"])
    assert text == "Turn 1: heard 3.0 s of audio, 1.0 s of it sound."
    assert len(str(first["text"])) > len(str(last["text"]))  # the text runs ahead of the audio
    kv = [a["kv_cache_length"] for a in answers]
    assert kv == sorted(kv) and kv[0] > created["prompt_length"]
    assert gw.sim.recorder.dropped == 0 and len(gw.sim.recorder.appends["my_id-1"]) == 5


async def test_force_listen_ends_the_reply_at_once() -> None:
    async with gateway() as gw, RawClient.open(gw.ws_url()) as client:
        await client.start()
        answers = await say_and_hear(client, [tone(440, 3.0)[:32_000], tone(440, 3.0)[32_000:64_000],
                                              SECOND])
        assert answers[-1]["type"] == "response.output_audio.delta" and not answers[-1]["end_of_turn"]
        await client.append(SECOND, force_listen=True)
        assert (await client.next())["type"] == "response.listen"
        after = await say_and_hear(client, [SECOND])
    assert after[0]["type"] == "response.listen"  # the rest of the reply is gone
    assert sum(gw.sim.recorder.force_listens.values()) == 1


async def test_a_second_client_waits_in_the_queue_with_its_place_and_eta() -> None:
    async with gateway(queue_update_s=0.2) as gw, RawClient.open(gw.ws_url()) as first:
        await first.start()
        async with RawClient.open(gw.ws_url()) as second:
            queued = await second.next()
            assert queued["type"] == "session.queued"
            assert (queued["position"], queued["queue_length"]) == (1, 1)
            # the gateway's estimate: one conversation's expected length, less what has run of it
            assert 119.0 <= queued["estimated_wait_s"] <= 120.0
            update = await second.next()
            assert update["type"] == "session.queue_update" and update["position"] == 1
            async with http_client() as http:
                status = (await http.get(gw.url + "/status")).json()
                health = await http.get(gw.url + "/health")
            assert (status["busy_workers"], status["queue_length"]) == (1, 1)
            assert health.status_code == 200  # busy or not
            await first.conn.close()
            async with asyncio.timeout(within(10)):
                while (event := await second.next())["type"] == "session.queue_update":
                    pass
            assert event["type"] == "session.queue_done"


async def test_a_full_queue_is_refused_with_an_error_and_1013() -> None:
    async with gateway(max_queue=0) as gw, RawClient.open(gw.ws_url()) as first:
        await first.start()
        async with RawClient.open(gw.ws_url()) as second:
            refused = await second.next()
            with pytest.raises(ConnectionClosed) as closed:
                await second.next()
    assert refused["error"]["code"] == "queue_full" and refused["error"]["type"] == "server_error"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


async def test_the_session_cap_warns_then_closes_with_timeout() -> None:
    async with gateway(max_session_s=0.6, go_away_s=0.3) as gw, RawClient.open(gw.ws_url()) as client:
        await client.start()
        going = await client.next()
        ended = await client.next()
        with pytest.raises(ConnectionClosed) as closed:
            await client.next()
    assert (going["type"], going["reason"], going["time_left_ms"]) == ("session.go_away", "timeout", 300)
    assert ended == {"type": "session.closed", "reason": "timeout"}
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


async def test_a_full_context_closes_the_session() -> None:
    async with gateway(context_tokens=120) as gw, RawClient.open(gw.ws_url()) as client:
        created = await client.start()
        kv: list[int] = []
        while not kv or kv[-1] < 120:
            kv += [int(str(a["kv_cache_length"])) for a in await say_and_hear(client, [SECOND])]
            assert len(kv) < 10
        ended = await client.next()
        with pytest.raises(ConnectionClosed):
            await client.next()
    assert ended == {"type": "session.closed", "reason": "context_full"}
    assert kv == [created["prompt_length"] + 25 * n for n in range(1, len(kv) + 1)]


async def test_a_frame_that_is_not_json_closes_with_1003() -> None:
    async with gateway() as gw, RawClient.open(gw.ws_url()) as client:
        await client.start()
        await client.conn.send("{not json")
        with pytest.raises(ConnectionClosed) as closed:
            await client.next()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


async def test_violations_are_answered_with_errors_and_the_session_goes_on() -> None:
    async with gateway() as gw, RawClient.open(gw.ws_url()) as client:
        assert (await client.next())["type"] == "session.queue_done"
        await client.append(SECOND)
        not_ready = await client.next()
        await client.send({"type": "session.update", "session": {"voice": "x"}})
        missing = await client.next()
        await client.send({"type": "session.update", "session": {"instructions": "Hi."}})
        assert (await client.next())["type"] == "session.created"
        await client.send({"type": "response.create"})
        unknown = await client.next()
        await client.append(silence(0.1))
        short = await client.next()
        await client.send({"type": "input_audio_buffer.append", "audio": "***"})
        bad = await client.next()
        assert (await say_and_hear(client, [SECOND]))[0]["type"] == "response.listen"
    codes = [e["error"]["code"] for e in (not_ready, missing, unknown, short, bad)]
    assert codes == ["not_ready", "missing_field", "unknown_event", "invalid_payload", "invalid_payload"]


async def test_appends_sent_faster_than_the_model_takes_them_lose_the_older_ones() -> None:
    async with gateway(step_s=0.3) as gw, RawClient.open(gw.ws_url("mode=audio&session_id=s")) as client:
        await client.start()
        await client.append(SECOND)
        await gw.sim.recorder.wait_for(lambda r: len(r.appends["s"]) == 1, timeout=within(5))
        await client.append(SECOND)  # both come while the model works on the first
        await client.append(SECOND)
        answers = [await client.next(), await client.next()]
    assert [a["type"] for a in answers] == ["response.listen"] * 2
    assert gw.sim.recorder.dropped == 1 and len(gw.sim.recorder.appends["s"]) == 2


async def test_the_close_is_confirmed_as_stopped() -> None:
    async with gateway() as gw, RawClient.open(gw.ws_url()) as client:
        await client.start()
        await client.send({"type": "session.close", "reason": "user_stop"})
        assert await client.next() == {"type": "session.closed", "reason": "stopped"}
        with pytest.raises(ConnectionClosed):
            await client.next()
        assert json.loads(gw.sim.recorder.frames[-1])["type"] == "session.close"


def test_the_queue_estimates_each_waiter_from_the_worker_that_frees_first() -> None:
    queue = WorkerQueue(workers=2, expected_s=100.0)
    assert queue.enqueue("a", 0.0) == 0 and queue.enqueue("b", 30.0) == 1
    c, d, e = (queue.enqueue(name, 40.0) for name in "cde")
    # a frees at 100 s (60 s from now), b at 130 s; c takes a's, d b's, e a's next one
    assert [(t.position, t.estimated_wait_s) for t in (c, d, e)] == [(1, 60.0), (2, 90.0), (3, 160.0)]
    assert queue.release(0, 50.0) == [("c", 0)]
    assert [(t.position, t.estimated_wait_s) for t in (d, e)] == [(1, 80.0), (2, 100.0)]
    assert queue.cancel("d", 60.0) == [] and e.position == 1


def test_the_model_answers_every_append_once_and_stops_on_force_listen() -> None:
    model = DuplexModel()
    model.prepare("Be brief.", has_ref_audio=False)
    loud = np.full(16_000, 0.2, np.float32) * np.sin(np.arange(16_000) / 5, dtype=np.float32)
    quiet = np.zeros(16_000, np.float32)
    outs = [model.step(loud), model.step(loud), model.step(quiet), model.step(quiet)]
    assert [type(o) for o in outs] == [Listened, Listened, Spoke, Spoke]
    assert model.is_speaking
    assert isinstance(model.step(quiet, force_listen=True), Listened) and not model.is_speaking


async def test_a_gateway_going_away_closes_each_conversation_with_server_shutdown() -> None:
    async with gateway() as gw, RawClient.open(gw.ws_url()) as client:
        await client.start()
        gw.sim.close()
        ended = await client.next()
        with pytest.raises(ConnectionClosed) as closed:
            await client.next()
    assert ended == {"type": "session.closed", "reason": "server_shutdown"}
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
