"""Resuming a Realtime session after a cut (``?resumable=1``): the dialect's words checked
against the official SDK's types, then the real parts: uvicorn on loopback, the simulator, a TCP
relay that drops both sockets (:mod:`tests.tcp_relay`), and as clients the ``openai`` SDK (its
own reconnect, told the token) and a raw ``websockets`` client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.realtime import RealtimeDialect, ResumableRealtimeDialect, realtime_dialect
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.events import AudioIn, Ready
from asgi_audio_proxy.metrics import ProxyMetrics
from asgi_audio_proxy.session.resumable import ResumeWire
from asgi_audio_proxy.session.stats import SessionStats
from tests.clients import at_real_time
from tests.conftest import Upstream, running_simulator
from tests.dialects.realtime_support import GA_EVENTS, checked, client, scope, types
from tests.processes import metric_totals
from tests.servers import serve_uvicorn
from tests.signals import silence, tone
from tests.tcp_relay import TcpRelay, tcp_relay
from tests.timing import within

RATE_HZ = 24_000
UTTERANCE = tone(440, 0.5, RATE_HZ) + silence(0.8, RATE_HZ)  # the simulator ends a turn after 0.5 s quiet
CHUNK_BYTES = RATE_HZ * 2 // 10
DELTA = "response.output_audio.delta"


def made(query: str) -> RealtimeDialect:
    return realtime_dialect(scope(query=query), ProxyConfig())


# -- the dialect ---------------------------------------------------------------------------------

def test_a_stock_client_gets_no_resume_event_and_is_not_resumable() -> None:
    d = made("model=gpt-realtime")
    assert not isinstance(d, ResumeWire)
    assert types(checked(d.send(Ready("s1", "v", "replica.token")))) == ["session.created"]


def test_opted_in_the_token_follows_session_created_and_resumed_names_the_same_session() -> None:
    d = made("model=gpt-realtime&resumable=1")
    assert isinstance(d, ResumableRealtimeDialect) and isinstance(d, ResumeWire)
    created, resumable = [json.loads(f) for f in d.send(Ready("s1", "v", "r.first"))]
    GA_EVENTS.validate_python(created, strict=True)
    assert resumable["type"] == "session.resumable" and resumable["resume_token"] == "r.first"
    [resumed] = [json.loads(f) for f in d.resumed("s1", "r.next")]
    assert resumed["type"] == "session.resumed" and resumed["resume_token"] == "r.next"
    assert resumed["session"] == created["session"]
    assert len({created["event_id"], resumable["event_id"], resumed["event_id"]}) == 3


def test_a_resume_refusal_is_a_realtime_error_alone() -> None:
    d = made("resume=r.gone")  # a resume asks for tokens by itself
    assert isinstance(d, ResumableRealtimeDialect)
    [error] = checked(d.resume_failed("this session cannot be resumed"))
    assert error["type"] == "error" and error["error"]["code"] == "resume_failed"


@pytest.mark.parametrize("fmt", ["audio/pcm", "audio/pcmu", "audio/pcma"])
def test_silence_while_away_is_an_append_of_silence_in_the_input_format(fmt: str) -> None:
    d = made("resumable=1")
    assert isinstance(d, ResumableRealtimeDialect)
    update = {"type": "realtime", "audio": {"input": {"format": {"type": fmt}}}}
    d.receive(client("session.update", session=update))
    [heard] = [e for e in d.receive(d.silence(0.02)) if isinstance(e, AudioIn)]
    assert heard.rate_hz == (24_000 if fmt == "audio/pcm" else 8_000)
    assert len(heard.pcm) == 2 * round(0.02 * heard.rate_hz)
    samples = memoryview(heard.pcm).cast("h")
    assert max(abs(x) for x in samples) <= 8  # A-law has no zero: its quietest level is 8


# -- the real parts ------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def realtime_proxied(grace_s: float = 5.0, **sim: Any) -> AsyncIterator[
        tuple[Upstream, AudioProxy, TcpRelay, list[SessionStats]]]:
    """The simulator behind a Realtime proxy (with metrics) on uvicorn, reached through a relay."""
    ended: list[SessionStats] = []
    async with running_simulator(**sim) as up:
        proxy = AudioProxy(ProxyConfig(upstream_url=up.url, chunk_duration=0.2, resume_grace_s=grace_s),
                           dialect=realtime_dialect, on_session_end=ended.append, metrics=ProxyMetrics())
        try:
            async with serve_uvicorn(proxy) as port, tcp_relay(port) as relay:
                yield up, proxy, relay, ended
        finally:
            await proxy.aclose()


async def next_event(ws: ClientConnection, timeout_s: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(within(timeout_s)):
        event: dict[str, Any] = json.loads(await ws.recv())
    LAST_READ[ws] = event["event_id"]
    return event


LAST_READ: dict[ClientConnection, str] = {}  # the event_id a client read last, by connection


async def speak(ws: ClientConnection) -> None:
    start = asyncio.get_running_loop().time()
    for i in range(0, len(UTTERANCE), CHUNK_BYTES):
        audio = base64.b64encode(UTTERANCE[i:i + CHUNK_BYTES]).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        await at_real_time(start, (i + CHUNK_BYTES) / (RATE_HZ * 2))


async def read_reply(ws: ClientConnection, audio: bytearray, *, until_audio: bool = False) -> str:
    """Events until ``response.done`` (or the first audio); returns the last event's type."""
    while True:
        event = await next_event(ws, 20)
        assert event["type"] != "error", event
        if event["type"] == DELTA:
            audio += base64.b64decode(event["delta"])
            if until_audio:
                return DELTA
        if event["type"] == "response.done":
            assert event["response"]["status"] == "completed", event
            return "response.done"


@pytest.mark.slow  # a spoken turn and a reply (6 s); its sibling is the fault table's realtime_cut_mid_reply
async def test_raw_client_cut_mid_reply_resumes_and_gets_all_the_reply_audio() -> None:
    async with realtime_proxied(chunk_delay_s=0.2) as (up, proxy, relay, ended):
        url = f"ws://127.0.0.1:{relay.port}/v1/realtime?model=gpt-realtime&resumable=1"
        ws = await connect(url)
        created, ready = await next_event(ws), await next_event(ws)
        assert (created["type"], ready["type"]) == ("session.created", "session.resumable")
        await speak(ws)
        audio = bytearray()
        await read_reply(ws, audio, until_audio=True)
        before = len(audio)
        relay.cut()
        ws.transport.abort()  # its unread frames stay unread, as on a client whose network went
        resume = f"resume={ready['resume_token']}&last_event_id={LAST_READ.pop(ws)}"
        async with connect(f"{url.partition('?')[0]}?{resume}") as again:
            resumed = await next_event(again)
            assert resumed["type"] == "session.resumed", resumed
            assert resumed["session"]["id"] == created["session"]["id"]
            assert resumed["resume_token"] != ready["resume_token"]
            await read_reply(again, audio)
            assert len(audio) > before, "the rest of the reply came after session.resumed"
            live = metric_totals(proxy.metrics.exposition()) if proxy.metrics else {}
            assert live["audio_proxy_live_sessions"] == 1
        async with asyncio.timeout(within(5)):
            await proxy.wait_idle()
    [stats] = ended
    assert stats.resumes == 1 and stats.balanced and stats.close_code == 1000
    assert len(audio) == stats.reply_audio_bytes and stats.reply_audio_dropped_bytes == 0
    assert up.sim.recorder.ws_opened == 1 and len(up.sim.recorder.replies) == 1
    totals = metric_totals(proxy.metrics.exposition()) if proxy.metrics else {}
    assert totals["audio_proxy_resumes_total"] == 1 and totals["audio_proxy_live_sessions"] == 0


async def test_a_refused_realtime_resume_is_an_error_event_then_1008() -> None:
    async with realtime_proxied(grace_s=0.5) as (up, proxy, relay, _ended):
        async with connect(f"ws://127.0.0.1:{relay.port}/v1/realtime?resume=nobody.x") as ws:
            [error] = checked([str(await ws.recv())])
            async with asyncio.timeout(within(5)):
                await ws.wait_closed()
        assert error["error"]["code"] == "resume_failed" and ws.close_code == 1008
        assert up.sim.recorder.ws_opened == 0
        assert proxy.metrics is not None
        assert 'audio_proxy_resumes_total{outcome="refused"} 1.0' in proxy.metrics.exposition()


def sdk_client(relay: TcpRelay) -> Any:
    from openai import AsyncOpenAI  # at use, not at collection (see realtime_support.OfficialEvents)

    return AsyncOpenAI(api_key="sk-any", websocket_base_url=f"ws://127.0.0.1:{relay.port}/v1",
                       base_url="http://127.0.0.1:9/v1")


async def test_openai_sdk_reconnect_hook_resumes_the_session_after_a_cut() -> None:
    async with realtime_proxied() as (up, proxy, relay, ended):
        tokens: list[str] = []

        def resume(event: Any) -> Any:  # nothing read since session.resumable: no last_event_id
            return {"extra_query": {**event.extra_query, "resume": tokens[-1]}}

        sdk = sdk_client(relay)
        seen: list[str] = []
        async with sdk.realtime.connect(model="gpt-realtime", extra_query={"resumable": "1"},
                                        on_reconnecting=resume, initial_delay=0.05) as conn:
            async with asyncio.timeout(within(10)):
                async for parsed in conn:
                    event: Any = parsed
                    seen.append(event.type)
                    if event.type == "session.created":
                        created = event.session.id
                    elif event.type == "session.resumable":
                        tokens.append(event.resume_token)
                        relay.cut()
                    elif event.type == "session.resumed":
                        assert event.session["id"] == created and event.resume_token != tokens[0]
                        break
            assert proxy.metrics is not None  # one session, live across its two connections
            assert metric_totals(proxy.metrics.exposition())["audio_proxy_live_sessions"] == 1
        await sdk.close()
        async with asyncio.timeout(within(5)):
            await proxy.wait_idle()
        totals = metric_totals(proxy.metrics.exposition())
    assert seen == ["session.created", "session.resumable", "session.resumed"]
    assert ended[0].resumes == 1 and ended[0].balanced and up.sim.recorder.ws_opened == 1
    assert (totals["audio_proxy_resumes_total"], totals["audio_proxy_live_sessions"]) == (1, 0)


@pytest.mark.slow  # a spoken turn and a reply (6 s); its sibling is the test above
async def test_openai_sdk_reconnects_with_its_token_and_hears_the_rest_of_the_reply() -> None:
    async with realtime_proxied(chunk_delay_s=0.2) as (up, proxy, relay, ended):
        tokens: list[str] = []
        last_read: list[str] = []

        def resume(event: Any) -> Any:  # the SDK's own reconnect hook, told the latest token
            return {"extra_query": {**event.extra_query, "resume": tokens[-1],
                                    "last_event_id": last_read[-1]}}

        sdk = sdk_client(relay)
        audio, seen = bytearray(), list[str]()
        async with sdk.realtime.connect(model="gpt-realtime", extra_query={"resumable": "1"},
                                        on_reconnecting=resume, initial_delay=0.05) as conn:
            speaking: asyncio.Task[None] | None = None
            async with asyncio.timeout(within(30)):
                async for parsed in conn:
                    event: Any = parsed  # the SDK's union has no member for the two extensions
                    seen.append(event.type)
                    last_read.append(event.event_id)
                    if event.type in ("session.resumable", "session.resumed"):
                        tokens.append(event.resume_token)  # an extension field: the SDK keeps it
                    if event.type == "session.resumable":
                        speaking = asyncio.create_task(_speak_sdk(conn))
                    elif event.type == DELTA:
                        audio += base64.b64decode(event.delta)
                        if seen.count(DELTA) == 1:
                            assert speaking is not None
                            await speaking  # the SDK raises on a send to a socket it finds cut
                            relay.cut()
                    elif event.type == "response.done":
                        break
            assert speaking is not None
            await speaking
        await sdk.close()
        async with asyncio.timeout(within(5)):
            await proxy.wait_idle()
    assert "session.resumed" in seen and seen.index("session.resumed") > seen.index(DELTA)
    [stats] = ended
    assert stats.resumes == 1 and stats.balanced and len(audio) == stats.reply_audio_bytes
    assert up.sim.recorder.ws_opened == 1


async def _speak_sdk(conn: Any) -> None:
    start = asyncio.get_running_loop().time()
    for i in range(0, len(UTTERANCE), CHUNK_BYTES):
        await conn.input_audio_buffer.append(audio=base64.b64encode(UTTERANCE[i:i + CHUNK_BYTES]).decode())
        await at_real_time(start, (i + CHUNK_BYTES) / (RATE_HZ * 2))
