"""The Realtime adapter against scripted servers: how each failure reaches the session (busy,
refused, unreachable, silent, garbage), which errors it lives with, and the ledger and the order
of what it sends when the server takes everything."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.config import ProxyConfig, UpstreamOptions
from asgi_audio_proxy.errors import (
    UpstreamBusy,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from asgi_audio_proxy.events import AudioOutcome, ReplyAudio, ReplyStarted, UpstreamEvent
from asgi_audio_proxy.upstreams.realtime import RealtimeAdapter, RealtimeSettings
from tests.servers import free_port
from tests.timing import within

from .support import realtime_server

SETTINGS = RealtimeSettings(model="scripted", connect_timeout_s=within(5))
Script = Callable[[ServerConnection], Any]


def event(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "event_id": "evt", **fields})


SESSION = {"id": "sess_1", "model": "scripted-model"}


async def open_session(ws: ServerConnection) -> list[dict[str, Any]]:
    """What a Realtime server does first: session.created, then the update answered."""
    await ws.send(event("session.created", session=SESSION))
    update = json.loads(await ws.recv())
    assert update["type"] == "session.update"
    await ws.send(event("session.updated", session=SESSION))
    return [update]


@contextlib.asynccontextmanager
async def adapter_for(script: Script, settings: RealtimeSettings = SETTINGS, **config: Any,
                      ) -> AsyncIterator[RealtimeAdapter]:
    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await script(ws)

    async with realtime_server(handler) as url:
        adapter = RealtimeAdapter(url, settings, ProxyConfig(**config))
        try:
            yield adapter
        finally:
            await adapter.aclose()


class Collector:
    """The adapter's ``emit``: keeps every event; :meth:`wait_for` awaits a condition on them."""

    def __init__(self) -> None:
        self.events: list[UpstreamEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: UpstreamEvent) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[list[UpstreamEvent]], bool], timeout_s: float = 5) -> None:
        async with asyncio.timeout(within(timeout_s)):
            while not predicate(self.events):
                await self._changed.wait()

    def outcome_bytes(self) -> int:
        return sum(e.nbytes for e in self.events if isinstance(e, AudioOutcome))


async def run_to_failure(adapter: RealtimeAdapter, emit: Collector | None = None) -> BaseException:
    """Run the adapter until it fails; returns its one error."""
    with pytest.raises(ExceptionGroup) as failed:
        async with asyncio.timeout(within(5)):
            await adapter.run(emit or Collector())
    [error] = failed.value.exceptions
    return error


async def test_session_limit_reached_at_connect_is_busy() -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.send(event("session.created", session=SESSION))
        await ws.recv()
        await ws.send(event("error", error={"type": "invalid_request_error", "code": "session_limit_reached",
                                            "message": "Too many sessions."}))
        await ws.wait_closed()

    async with adapter_for(script) as adapter:
        with pytest.raises(UpstreamBusy, match="session_limit_reached"):
            await adapter.connect(UpstreamOptions())


async def test_resource_exhausted_mid_conversation_is_busy_and_refused_requests_are_not() -> None:
    async def script(ws: ServerConnection) -> None:
        await open_session(ws)
        await ws.send(event("error", error={"type": "invalid_request_error", "message": "no response",
                                            "code": "response_cancel_not_active"}))
        await ws.send(event("response.created", response={"id": "r1"}))
        await ws.send(event("error", error={"type": "server_error", "code": "resource_exhausted",
                                            "message": "engine full"}))
        await ws.wait_closed()

    async with adapter_for(script) as adapter:
        await adapter.connect(UpstreamOptions())
        assert adapter.version == "scripted-model"
        emit = Collector()
        busy = await run_to_failure(adapter, emit)
    assert isinstance(busy, UpstreamBusy) and "engine full" in busy.message
    assert emit.events == [ReplyStarted()]  # the refused cancel cost nothing


async def test_an_error_answering_the_session_update_is_a_protocol_error() -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.recv()  # a server that opens the session on the first update (vLLM-Omni does)
        await ws.send(event("rate_limits.updated", rate_limits=[]))
        await ws.send(event("error", error={"type": "invalid_request_error", "code": "invalid_value",
                                            "message": "Unknown parameter 'session.type'."}))
        await ws.wait_closed()

    async with adapter_for(script) as adapter:
        with pytest.raises(UpstreamProtocolError, match=r"refused the session update.*session\.type"):
            await adapter.connect(UpstreamOptions())


@pytest.mark.parametrize(("ending", "expected"), [
    ("close_1013", UpstreamBusy), ("close_1000", UpstreamUnavailable),
    ("server_error", UpstreamError), ("binary", UpstreamProtocolError), ("garbage", UpstreamProtocolError),
])
async def test_how_a_conversation_ends_upstream(ending: str, expected: type[UpstreamError]) -> None:
    async def script(ws: ServerConnection) -> None:
        await open_session(ws)
        if ending.startswith("close_"):
            await ws.close(int(ending[-4:]), "bye")
        elif ending == "server_error":
            await ws.send(event("error", error={"type": "server_error", "message": "GPU fell over"}))
        elif ending == "binary":
            await ws.send(b"\x00\x01")
        else:
            await ws.send("{not json")
        await ws.wait_closed()

    async with adapter_for(script) as adapter:
        await adapter.connect(UpstreamOptions())
        error = await run_to_failure(adapter)
    assert type(error) is expected, error


async def test_unreachable_refusing_and_silent_servers() -> None:
    port = free_port()  # nobody listens on it
    with pytest.raises(UpstreamUnavailable, match="cannot reach"):
        await RealtimeAdapter(f"http://127.0.0.1:{port}", SETTINGS).connect(UpstreamOptions())

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the connection, never answers the handshake
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        quick = RealtimeSettings(connect_timeout_s=0.3)
        with pytest.raises(UpstreamTimeout, match="no answer"):
            await RealtimeAdapter(url, quick).connect(UpstreamOptions())

    async def mute(ws: ServerConnection) -> None:
        await ws.wait_closed()  # accepts, never answers the session update

    async with adapter_for(mute, RealtimeSettings(connect_timeout_s=0.3)) as adapter:
        with pytest.raises(UpstreamTimeout, match="did not answer the session update"):
            await adapter.connect(UpstreamOptions())
    with pytest.raises(ValueError, match="Realtime upstream"):
        RealtimeAdapter("unix:///tmp/socket", SETTINGS)


async def test_every_byte_gets_an_outcome_and_a_stop_goes_ahead_of_queued_audio() -> None:
    received: list[dict[str, Any]] = []
    got_create, got_last_cancel = asyncio.Event(), asyncio.Event()
    second_reply = base64.b64encode(bytes(4_800)).decode()

    async def script(ws: ServerConnection) -> None:
        received.extend(await open_session(ws))
        await ws.send(event("response.created", response={"id": "r1"}))
        audio = base64.b64encode(bytes(48_000)).decode()  # 1 s of reply audio at once
        await ws.send(event("response.output_audio.delta", response_id="r1", item_id="i1", delta=audio))
        async for frame in ws:
            received.append(json.loads(frame))
            if received[-1]["type"] == "conversation.item.truncate":
                await ws.send(event("response.done", response={"id": "r1", "status": "cancelled"}))
            if received[-1] == {"type": "response.cancel", "response_id": "r2"}:
                got_last_cancel.set()
            if received[-1]["type"] == "response.create":
                got_create.set()
                await ws.send(event("response.created", response={"id": "r2"}))
                await ws.send(event("response.output_audio.delta", response_id="r2", item_id="i2",
                                    delta=second_reply))

    async with adapter_for(script, max_buffered_s=1.0) as adapter:
        await adapter.connect(UpstreamOptions(assistant_prompt="Be brief."))
        emit = Collector()
        async with asyncio.TaskGroup() as tg:
            runner = tg.create_task(adapter.run(emit))
            await emit.wait_for(lambda events: any(isinstance(e, ReplyAudio) for e in events))
            for _ in range(40):  # 2 s of audio into a 1 s queue: send_audio waits for room
                await adapter.send_audio(bytes(2_400))
            assert adapter.stop() is True
            assert adapter.stop() is False  # once
            await adapter.commit()
            await emit.wait_for(lambda events: events.count(ReplyStarted()) == 2 and isinstance(
                events[-1], ReplyAudio) and emit.outcome_bytes() == 40 * 2_400)
            await asyncio.wait_for(got_create.wait(), within(5))
            runner.cancel()
        assert adapter.leftover() == {}
        await adapter.aclose()  # with the second reply still coming: it is cancelled first
        await asyncio.wait_for(got_last_cancel.wait(), within(5))
    kinds = [e["type"] for e in received]
    assert received[0]["session"]["instructions"] == "Be brief."
    cancel_at = kinds.index("response.cancel")
    assert kinds[cancel_at + 1] == "conversation.item.truncate" and received[cancel_at]["response_id"] == "r1"
    assert 0 <= received[cancel_at + 1]["audio_end_ms"] <= 1000
    assert "input_audio_buffer.append" in kinds[cancel_at + 2:]  # audio queued before the stop: after it
    appended = sum(len(base64.b64decode(e["audio"])) for e in received if e["type"].endswith("append"))
    assert appended == 40 * 2_400
    assert kinds[-4:] == ["input_audio_buffer.commit", "response.create", "response.cancel",
                          "conversation.item.truncate"]
    # the cut reply was ended by the session when it was cut: no end of it from here
    assert [e for e in emit.events if not isinstance(e, AudioOutcome)] == [
        ReplyStarted(), ReplyAudio(bytes(48_000), 24_000), ReplyStarted(), ReplyAudio(bytes(4_800), 24_000)]
