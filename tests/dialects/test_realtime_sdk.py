"""End to end: the official OpenAI SDKs talk to the simulator through the Realtime dialect.

The ``openai`` SDK (GA and beta clients) drives the raw protocol; every server event is checked
against the SDK's own types. ``openai-agents`` runs a full turn with its own validation on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.realtime import realtime_api_key, realtime_dialect
from asgi_audio_proxy.edge.admission import Denied
from asgi_audio_proxy.edge.middleware import AudioProxyMiddleware
from tests.clients import at_real_time
from tests.conftest import running_simulator
from tests.servers import serve
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within

from .realtime_support import BETA_EVENTS, GA_EVENTS

RATE_HZ = 24_000
#: one short turn at 24 kHz: a 440 Hz tone, then enough quiet for the model's VAD
UTTERANCE = tone(440, 1.0, RATE_HZ) + silence(1.4, RATE_HZ)
CHUNK_BYTES = RATE_HZ * 2 // 10  # 100 ms appends, as browser apps send them
KEY = "sk-proxy-test"


def check_key(scope: Any) -> object:
    """An admission hook for Realtime clients: the key they present, header or subprotocol."""
    if realtime_api_key(scope) != KEY:
        raise Denied(401, "invalid API key")
    return "realtime-client"


async def not_found(scope: Any, receive: Any, send: Any) -> None:
    """The app the proxy is mounted in front of (it never sees a Realtime connection)."""
    raise AssertionError(f"the app was given {scope['type']} {scope.get('path')}")


@contextlib.asynccontextmanager
async def realtime_proxy(server: str = "uvicorn", **config: Any) -> AsyncIterator[str]:
    """The simulator behind the middleware with ``/v1/realtime`` beside the native path; yields
    the SDKs' base URL (``ws://…/v1``)."""
    async with running_simulator() as up:
        middleware = AudioProxyMiddleware(
            not_found, config=ProxyConfig(upstream_url=up.url, chunk_duration=0.2, **config),
            dialects={"/v1/realtime": realtime_dialect}, authenticate=check_key)
        try:
            async with serve(server, middleware) as port:
                yield f"ws://127.0.0.1:{port}/v1"
        finally:
            await middleware.proxy.aclose()


class Conversation:
    """An ``openai`` SDK connection read event by event, each event validated strictly."""

    def __init__(self, conn: Any, beta: bool) -> None:
        self.conn = conn
        self.adapter = BETA_EVENTS if beta else GA_EVENTS
        self.events: list[dict[str, Any]] = []

    async def next(self, timeout_s: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(within(timeout_s)):
            raw = await self.conn.recv_bytes()
        event: dict[str, Any] = json.loads(raw)
        self.adapter.validate_python(event, strict=True)
        self.events.append(event)
        return event

    async def until(self, kind: str, timeout_s: float = 20) -> dict[str, Any]:
        async with asyncio.timeout(within(timeout_s)):
            while (event := await self.next(timeout_s))["type"] != kind:
                assert event["type"] != "error", event
        return event

    async def speak(self, pcm: bytes) -> None:
        start = asyncio.get_running_loop().time()
        for i in range(0, len(pcm), CHUNK_BYTES):
            await self.conn.input_audio_buffer.append(audio=_b64(pcm[i:i + CHUNK_BYTES]))
            await at_real_time(start, (i + CHUNK_BYTES) / (RATE_HZ * 2))

    async def turn(self, *, cancel_at_first_audio: bool = False) -> tuple[dict[str, Any], bytes, str]:
        """Speak while reading; returns ``response.done``, the reply audio and its transcript."""
        audio, transcript = bytearray(), []
        delta, transcript_delta = _names(self.adapter is BETA_EVENTS)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.speak(UTTERANCE))
            while (event := await self.next(20))["type"] != "response.done":
                assert event["type"] != "error", event
                if event["type"] == delta:
                    audio += _unb64(event["delta"])
                    if cancel_at_first_audio:
                        cancel_at_first_audio = False
                        await self.conn.response.cancel()
                elif event["type"] == transcript_delta:
                    transcript.append(event["delta"])
        return event, bytes(audio), "".join(transcript)


def _names(beta: bool) -> tuple[str, str]:
    if beta:
        return "response.audio.delta", "response.audio_transcript.delta"
    return "response.output_audio.delta", "response.output_audio_transcript.delta"


def _b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


@contextlib.asynccontextmanager
async def sdk_connection(base_url: str, *, beta: bool) -> AsyncIterator[Conversation]:
    from openai import AsyncOpenAI  # here, not at collection: see realtime_support.ServerEvents

    client = AsyncOpenAI(api_key=KEY, websocket_base_url=base_url, base_url="http://127.0.0.1:9/v1")
    realtime = client.beta.realtime if beta else client.realtime
    async with realtime.connect(model="gpt-realtime") as conn:
        yield Conversation(conn, beta)
    await client.close()


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
async def test_openai_sdk_turn_cancel_and_second_turn(beta: bool) -> None:
    async with realtime_proxy() as base_url, sdk_connection(base_url, beta=beta) as talk:
        created = await talk.next()
        assert created["type"] == "session.created"
        session: dict[str, Any] = {"instructions": "Answer briefly."}
        if not beta:
            session |= {"type": "realtime",
                        "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.5}}}}
        await talk.conn.session.update(session=session)
        updated = await talk.until("session.updated")
        assert updated["session"]["instructions"] == "Answer briefly."

        done, audio, transcript = await talk.turn()
        assert done["response"]["status"] == "completed"
        assert transcript.startswith("Turn 1:")
        assert dominant_frequency_hz(audio, RATE_HZ) == pytest.approx(440, abs=5)

        done, audio, _ = await talk.turn(cancel_at_first_audio=True)
        assert (done["response"]["status"], done["response"]["status_details"]["reason"]) == (
            "cancelled", "client_cancelled")
        cancelled_id = done["response"]["id"]
        after_cancel = len(talk.events)

        done, audio, transcript = await talk.turn()
        assert done["response"]["status"] == "completed" and transcript.startswith("Turn ")
        assert not [e for e in talk.events[after_cancel:] if e.get("response_id") == cancelled_id]
    ids = [event["event_id"] for event in talk.events]
    assert len(set(ids)) == len(ids)


async def test_subprotocol_echoed_only_when_offered_and_key_checked(server: str) -> None:
    async with realtime_proxy(server) as base_url:
        url = base_url + "/realtime?model=gpt-realtime"
        offered = ["realtime", f"openai-insecure-api-key.{KEY}"]
        async with connect(url, subprotocols=offered) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol == "realtime"
            async with asyncio.timeout(within(10)):
                assert json.loads(await ws.recv())["type"] == "session.created"
        async with connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
            assert ws.subprotocol is None
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers={"Authorization": "Bearer wrong"}):
                pass
        assert refused.value.response.status_code == 401


async def test_openai_agents_realtime_session_full_turn(caplog: pytest.LogCaptureFixture) -> None:
    from agents.realtime import RealtimeAgent, RealtimeRunner

    caplog.set_level(logging.WARNING, logger="openai.agents")
    agent = RealtimeAgent(name="assistant", instructions="Answer briefly.")
    async with realtime_proxy() as base_url:
        runner = RealtimeRunner(agent)
        session = await runner.run(model_config={"url": base_url + "/realtime?model=gpt-realtime",
                                                 "api_key": KEY})
        audio, errors, ended = bytearray(), [], False
        async with session:
            async def speak() -> None:
                start = asyncio.get_running_loop().time()
                for i in range(0, len(UTTERANCE), CHUNK_BYTES):
                    await session.send_audio(UTTERANCE[i:i + CHUNK_BYTES])
                    await at_real_time(start, (i + CHUNK_BYTES) / (RATE_HZ * 2))

            speaker = asyncio.create_task(speak())
            async with asyncio.timeout(within(20)):
                async for event in session:
                    if event.type == "audio":
                        audio += event.audio.data
                    elif event.type == "error":
                        errors.append(event.error)
                    elif event.type == "raw_model_event" and event.data.type == "turn_ended":
                        ended = True
                        break
            await speaker
    assert ended and not errors
    assert dominant_frequency_hz(bytes(audio), RATE_HZ) == pytest.approx(440, abs=5)
    logged = [r for r in caplog.records if r.name.startswith("openai.agents")
              and r.levelno >= logging.WARNING]
    assert not logged
