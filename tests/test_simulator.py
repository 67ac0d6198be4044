"""The upstream simulator, against ``UPSTREAM_PROTOCOL.md``: pure core first, then over real sockets.

Integration tests run the simulator under uvicorn (one under hypercorn) on loopback port 0 and
talk to it with the real ``websockets`` client and ``httpx``. Most drive the simulator's clock
by hand (``FakeClock``: +0.2 s per 200 ms message), so VAD and echo-guard timing need no waiting;
one test streams at real-time pace. Nothing sleeps to synchronise: tests await the recorder
(``wait_for``) or the reply itself under ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx_sse
import numpy as np
import pytest
import websockets
from websockets.asyncio.client import connect

from asgi_audio_proxy.audio import pcm16_to_wav, wav_to_pcm16
from asgi_audio_proxy.simulator.app import UpstreamSimulator
from asgi_audio_proxy.simulator.model import build_reply
from tests.clients import at_real_time
from tests.http_clients import http_client
from tests.servers import serve_hypercorn
from tests.signals import silence, tone
from tests.simulator_wire import (
    OPTIONS,
    SPEECH,
    ack,
    frame,
    open_completions,
    pieces,
    running,
    speak,
    sse_messages,
)
from tests.timing import FakeClock, within


async def test_s2_1_health_and_errors_in_fastapi_form() -> None:
    async with running(UpstreamSimulator()) as (client, _):
        for path in ("/health", "/api/v1/health"):
            assert (await client.get(path)).content == b'{"status":"OK"}'
        cases = [
            ("GET", "/nope", {}, b"", 404, b'{"detail":"Not Found"}'),
            ("GET", "/api/v1/stop", {}, b"", 405, b'{"detail":"Method Not Allowed"}'),
            ("POST", "/stop", {}, b"", 400, b'{"detail":"Missing uid in headers"}'),
            ("POST", "/api/v1/completions", {}, b"{}", 400, b'{"detail":"Missing uid in headers"}'),
            ("POST", "/api/v1/feedback", {}, b"{}", 400, b'{"detail":"Missing \'uid\' header"}'),
            ("POST", "/api/v1/feedback", {"uid": "F"}, b'{"response_id": 1, "rating": "meh"}', 500,
             b'{"detail":"400: Invalid rating value: meh"}'),
            ("POST", "/feedback", {"uid": "F"}, b'{"response_id": 1, "rating": "like"}', 200,
             ack("F", "done").encode()),
            ("POST", "/init_options", {"uid": "F"}, b"{}", 400,
             b'{"detail":"init options error: 400: Invalid request format"}'),
            ("POST", "/api/v1/init_options", {"uid": "F"},
             b'{"messages": [{"role": "user", "content": [{"type": "none"}]}]}', 400,
             b'{"detail":"init options error: 400: Invalid content type: none"}'),
            ("POST", "/api/v1/stream", {"uid": "F"}, b"{", 400, b'{"detail":"Invalid JSON"}'),
            ("POST", "/stream", {"uid": "F"}, b"{}", 500, b'{"detail":"400: Invalid request format"}'),
            ("POST", "/api/v1/stop", {"uid": "F"}, b"", 200, ack("F", "stop").encode()),
        ]
        for method, path, headers, body, status, expected in cases:
            response = await client.request(method, path, headers=headers, content=body)
            assert (response.status_code, response.content) == (status, expected), path


@pytest.mark.parametrize("version", ["2.6", "4.5"])
async def test_s2_2_init_options_answers_the_version_and_stores_options_as_is(version: Any) -> None:
    sim = UpstreamSimulator(version=version)
    async with running(sim) as (client, _):
        odd = {**OPTIONS, "extra": [1, 2]}
        body = {"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "", "format": "mp3"}},
            {"type": "options", "options": odd}]}]}
        response = await client.post("/api/v1/init_options", headers={"uid": "I"}, json=body)
        assert response.content == ack("I", "done", content=version).encode()
        assert sim.recorder.options == [odd] and sim.options.value == odd


async def test_s3_1_websocket_without_uid_is_refused_with_403() -> None:
    async with running(UpstreamSimulator()) as (_, ws_base):
        for path in ("/ws/stream", "/ws/api/v1/stream?x=1", "/ws/other?uid=A"):
            with pytest.raises(websockets.InvalidStatus) as info:
                async with connect(ws_base + path):
                    pass
            assert info.value.response.status_code == 403


async def test_s3_3_ack_reasons_and_error_answers_byte_exact() -> None:
    sim = UpstreamSimulator()
    async with running(sim) as (_, ws_base), connect(f"{ws_base}/ws/api/v1/stream?uid=A") as ws:
        stop = {"role": "user", "content": [{"type": "stop_response"}]}
        exchanges = [
            (frame(silence(0.2), "A"), [ack("A", "done")]),
            ("not json", ['{"error":"Invalid JSON"}']),
            (json.dumps({"foo": 1}), ['{"error":"Invalid request format"}']),
            (json.dumps({"messages": []}), [ack("A", "")]),
            (json.dumps({"messages": [{"role": "user", "content": []}]}), [ack("A", "empty audio")]),
            (json.dumps({"messages": [{"x": 1}]}), ['{"error":"Invalid message format"}', ack("A", "")]),
            (json.dumps({"messages": [stop]}), [ack("A", "stop")]),
        ]
        for sent, expected in exchanges:
            await ws.send(sent)
            assert [await ws.recv() for _ in expected] == expected, sent
        assert sim.recorder.chunks["A"] == [silence(0.2)]
        await ws.send(b"\x00\x01")
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1011, "Unexpected error: 'text'")
    await sim.recorder.wait_for(lambda r: r.ws_closed == 1, timeout=within(5))


async def test_s3_3_bad_base64_closes_1011_and_s8_raw_pcm_fails_at_the_fifth_message() -> None:
    async with running(UpstreamSimulator()) as (_, ws_base):
        async with connect(f"{ws_base}/ws/stream?uid=B") as ws:
            await ws.send(json.dumps({"messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "abc"}}]}]}))
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1011
            assert info.value.rcvd.reason.startswith(
                "Internal server error: Message processing error: Audio processing error: ")
        async with connect(f"{ws_base}/ws/stream?uid=B") as ws:
            for _ in range(4):
                await ws.send(frame(silence(0.2), "B", raw=True))
                assert await ws.recv() == ack("B", "done")
            await ws.send(frame(silence(0.2), "B", raw=True))
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.reason == ("Internal server error: Message processing error: "
                                              "Audio processing error: file does not start with RIFF id")


async def test_s4_1_sse_framing_echo_and_end_marker_byte_exact() -> None:
    clock = FakeClock()
    sim = UpstreamSimulator(clock=clock)
    async with running(sim) as (client, ws_base):
        body = await open_completions(sim, client, "K")
        async with connect(f"{ws_base}/ws/stream?uid=K") as ws:
            assert await speak(ws, SPEECH, "K", clock) == ["done"] * 10 + ["skip"]
            async with asyncio.timeout(within(5)):
                raw = await body
    reply = sim.recorder.replies[0]
    assert reply.text == "Turn 1: heard 2.0 s of audio, 1.0 s of it sound."
    _, _, chunks = build_reply("2.6", 1, np.frombuffer(SPEECH[:64_000], "<i2") / 32768, None)
    messages = [(pcm16_to_wav(SPEECH[:64_000]), "assistant:\n", 0)]
    messages += [(c.wav, c.text, i + 1) for i, c in enumerate(chunks)]
    expected = "event: message\n"
    for audio, text, response_id in [*messages, (None, "\n<end>", len(chunks))]:
        encoded = None if audio is None else base64.b64encode(audio).decode()
        data = {"id": "K", "response_id": response_id, "choices": [
            {"role": "assistant", "audio": encoded, "text": text, "finish_reason": "processing"}]}
        expected += f"data: {json.dumps(data)}\n\n"
    assert raw == expected.encode()
    assert sim.recorder.sse_opened == sim.recorder.sse_closed == 1


async def test_s4_1_sse_headers_and_events_through_httpx_sse() -> None:
    clock = FakeClock()
    sim = UpstreamSimulator(clock=clock, reply_chunks=2)
    async with running(sim) as (client, ws_base):
        async def events() -> list[httpx_sse.ServerSentEvent]:
            async with httpx_sse.aconnect_sse(client, "POST", "/completions", headers={"uid": "H"},
                                              json={}) as source:
                assert source.response.headers["content-type"] == "text/event-stream; charset=utf-8"
                assert source.response.headers["cache-control"] == "no-cache"
                return [event async for event in source.aiter_sse()]
        task = asyncio.create_task(events())
        await sim.recorder.wait_for(lambda r: r.sse_opened == 1, timeout=within(5))
        async with connect(f"{ws_base}/ws/stream?uid=H") as ws:
            await speak(ws, SPEECH, "H", clock)
        async with asyncio.timeout(within(5)):
            received = await task
    assert [e.event for e in received] == ["message"] * 4
    assert [e.json()["choices"][0]["text"] for e in received][-1] == "\n<end>"


@pytest.mark.parametrize(("version", "rate", "sizes", "ids"), [
    ("2.6", 24_000, [12_800] * 3 + [9_600], [0, 1, 2, 3, 4, 4]),
    ("4.5", 16_000, [16_000] * 2, [0, 0, 0, 0]),
])
async def test_s7_reply_rate_chunk_size_and_response_ids_per_version(
    version: Any, rate: int, sizes: list[int], ids: list[int]
) -> None:
    clock = FakeClock()
    sim = UpstreamSimulator(version=version, clock=clock)
    async with running(sim) as (client, ws_base):
        body = await open_completions(sim, client, "V")
        async with connect(f"{ws_base}/ws/stream?uid=V") as ws:
            await speak(ws, SPEECH, "V", clock)
            async with asyncio.timeout(within(5)):
                first = sse_messages(await body)
            body = await open_completions(sim, client, "V")  # next turn: ids moved on by 10
            await speak(ws, SPEECH, "V", clock)
            async with asyncio.timeout(within(5)):
                second = sse_messages(await body)
    assert [m["response_id"] for m in first] == ids
    assert [m["response_id"] for m in second] == [i + ids[-1] + 10 for i in ids]
    audio = [wav_to_pcm16(base64.b64decode(m["choices"][0]["audio"])) for m in first[1:-1]]
    assert [(a.sample_rate_hz, len(a.pcm) // 2) for a in audio] == [(rate, n) for n in sizes]
    assert "Turn 2:" in second[1]["choices"][0]["text"]


async def test_s5_1_new_uid_takes_over_and_two_open_completions_both_reply() -> None:
    clock = FakeClock()
    sim = UpstreamSimulator(clock=clock, reply_chunks=1)
    async with running(sim) as (client, ws_base):
        first = await open_completions(sim, client, "OLD")
        async with connect(f"{ws_base}/ws/stream?uid=OLD") as old:
            assert await speak(old, silence(0.2), "OLD", clock) == ["done"]
            second = await open_completions(sim, client, "NEW")
            assert await speak(old, silence(0.2), "OLD", clock) == ["UID changed in stream"]
            async with connect(f"{ws_base}/ws/stream?uid=NEW") as new:
                await speak(new, SPEECH, "NEW", clock)
        async with asyncio.timeout(within(5)):
            bodies = [sse_messages(await first), sse_messages(await second)]
    for messages in bodies:  # both carry a full reply, with the new uid and its audio
        assert {m["id"] for m in messages} == {"NEW"}
        assert messages[0]["choices"][0]["audio"] == base64.b64encode(pcm16_to_wav(SPEECH[:64_000])).decode()
        assert messages[-1]["choices"][0]["text"] == "\n<end>"
    assert sim.recorder.chunks["OLD"] == [silence(0.2)]


async def test_s1_stop_ends_the_reply_without_end_marker_and_is_not_a_release() -> None:
    clock = FakeClock()
    sim = UpstreamSimulator(clock=clock, reply_chunks=12, first_chunk_delay_s=0.0, chunk_delay_s=0.05)
    async with running(sim) as (client, ws_base):
        body = await open_completions(sim, client, "S")
        assert (await client.post("/api/v1/stop", headers={"uid": "S"})).status_code == 200
        assert not body.done()  # /stop does not release a waiting /completions
        async with connect(f"{ws_base}/ws/stream?uid=S") as ws:
            await speak(ws, SPEECH, "S", clock)  # the stop flag stands: the body ends bare
            async with asyncio.timeout(within(5)):
                assert await body == b"event: message\n"
            body = await open_completions(sim, client, "S")
            await speak(ws, SPEECH, "S", clock)
            await sim.recorder.wait_for(lambda r: len(r.replies) == 1, timeout=within(5))
            await client.post("/stop", headers={"uid": "S"})
            async with asyncio.timeout(within(5)):
                messages = sse_messages(await body)
    assert messages[0]["choices"][0]["text"] == "assistant:\n"
    assert len(messages) < 13 and all(m["choices"][0]["audio"] for m in messages)
    assert sim.recorder.stops == 2
    assert sim.recorder.replies[0].heard_s >= 4.0  # the stopped turn's audio stayed in the model


async def test_s5_5_skip_while_pending_and_echo_guard_error_event() -> None:
    clock = FakeClock()
    sim = UpstreamSimulator(clock=clock, reply_chunks=2, chunk_delay_s=0.5)
    async with running(sim) as (client, ws_base):
        body = await open_completions(sim, client, "G")
        async with connect(f"{ws_base}/ws/stream?uid=G") as ws:
            await speak(ws, SPEECH, "G", clock)
            await sim.recorder.wait_for(lambda r: len(r.replies) == 1, timeout=within(5))
            assert await speak(ws, silence(0.4), "G", clock) == ["skip", "skip"]  # generating
            async with asyncio.timeout(within(5)):
                await body
            # a whole utterance inside the echo guard, /completions reopened only after it
            assert set(await speak(ws, SPEECH, "G", clock)) == {"done"}
            assert sim.recorder.turn_ends == 2
            async with asyncio.timeout(within(5)):
                body = await open_completions(sim, client, "G")
                assert await body == b'event: message\ndata:{"error": "name \'exc\' is not defined"}\n\n'


async def test_s5_2_vad_ends_a_real_time_turn_about_1_s_after_the_tone() -> None:
    sim = UpstreamSimulator()
    async with running(sim) as (client, ws_base):
        body = await open_completions(sim, client, "R")
        async with connect(f"{ws_base}/ws/stream?uid=R") as ws:
            start = asyncio.get_running_loop().time()
            for index, piece in enumerate(pieces(tone(440, 1.0) + silence(2.0))):
                await ws.send(frame(piece, "R"))
                await ws.recv()
                if sim.recorder.turn_ends:
                    break
                await at_real_time(start, 0.2 * (index + 1))
            ended_after_tone = asyncio.get_running_loop().time() - start - 1.0
        async with asyncio.timeout(within(5)):
            assert sse_messages(await body)[-1]["choices"][0]["text"] == "\n<end>"
    assert 0.7 <= ended_after_tone <= 1.3 * within(1)


async def test_s1_no_audio_trigger_over_sockets() -> None:
    clock = FakeClock()
    sim = UpstreamSimulator(clock=clock, activity_check_interval_s=0.02)
    async with running(sim) as (client, ws_base):
        body = await open_completions(sim, client, "N")
        async with connect(f"{ws_base}/ws/stream?uid=N") as ws:
            await speak(ws, tone(440, 1.0), "N", clock)
            clock.now += 3.01
            async with asyncio.timeout(within(5)):
                messages = sse_messages(await body)
    assert sim.recorder.turn_ends == 1 and messages[-1]["choices"][0]["text"] == "\n<end>"


async def test_hypercorn_serves_a_whole_turn() -> None:
    clock = FakeClock()
    sim = UpstreamSimulator(clock=clock, reply_chunks=1)
    async with serve_hypercorn(sim) as port, http_client(
        base_url=f"http://127.0.0.1:{port}", timeout=within(10)
    ) as client:
        body = await open_completions(sim, client, "Y")
        async with connect(f"ws://127.0.0.1:{port}/ws/stream?uid=Y") as ws:
            await speak(ws, SPEECH, "Y", clock)
            async with asyncio.timeout(within(5)):
                assert len(sse_messages(await body)) == 3
