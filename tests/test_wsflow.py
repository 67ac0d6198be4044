"""The WebSocket protocol ``serve`` runs: uvicorn's ``websockets-sansio`` with reading paused by
watermark. Over a real uvicorn on loopback: an app that does not read gets at most
``MAX_QUEUED_MESSAGES`` small frames (or one large one) queued before reading pauses, then every
frame, intact and in order, once it reads; text frames too. The proxy still knows it runs on
uvicorn (which tells a close from a cut, so a cut session is held for a resume)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from asgi_audio_proxy.edge.connection import tells_a_close_from_a_cut
from asgi_audio_proxy.edge.wsflow import MAX_QUEUED_BYTES, MAX_QUEUED_MESSAGES, FlowWebSocketProtocol
from tests.servers import serve_uvicorn
from tests.timing import within


class Observed(FlowWebSocketProtocol):
    """Tells the test when reading paused, and how much was queued then."""

    paused: ClassVar[asyncio.Event]
    queued_at_pause: ClassVar[list[int]]

    def send_receive_event_to_app(self) -> None:
        was_paused = self.read_paused
        super().send_receive_event_to_app()
        if self.read_paused and not was_paused:
            Observed.queued_at_pause.append(self.queue.qsize())
            Observed.paused.set()


class LateReader:
    """Accepts, then reads nothing until ``go`` is set; then everything, into ``got``."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.got: list[Any] = []
        self.done = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await self.go.wait()
        while (message := await receive())["type"] == "websocket.receive":
            self.got.append(message.get("bytes") or message.get("text"))
        self.done.set()


async def _frames_through(frames: list[bytes | str]) -> tuple[LateReader, list[int]]:
    Observed.paused, Observed.queued_at_pause = asyncio.Event(), []
    app = LateReader()
    async with serve_uvicorn(app, ws=Observed) as port, \
            connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
        for frame in frames:
            await ws.send(frame)
        async with asyncio.timeout(within(5)):
            await Observed.paused.wait()
        app.go.set()
        await ws.close()
        async with asyncio.timeout(within(5)):
            await app.done.wait()
    return app, Observed.queued_at_pause


async def test_small_frames_queue_up_to_the_watermark_and_all_arrive_in_order() -> None:
    frames: list[bytes | str] = [bytes([i]) * 640 for i in range(50)]
    frames[10] = '{"type": "stop"}'
    app, queued = await _frames_through(frames)
    assert queued[0] == MAX_QUEUED_MESSAGES  # not paused after the first message
    assert app.got == frames


async def test_a_large_frame_pauses_reading_at_once() -> None:
    big = b"\x01" * MAX_QUEUED_BYTES
    app, queued = await _frames_through([big, b"after"])
    assert queued[0] == 1
    assert app.got == [big, b"after"]


async def test_the_proxy_knows_it_for_uvicorn_s_own_so_a_cut_session_is_held() -> None:
    told: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        told.append(tells_a_close_from_a_cut(WebSocket(scope, receive, send)))
        await send({"type": "websocket.close", "code": 1000})

    async with serve_uvicorn(app, ws=FlowWebSocketProtocol) as port:
        with contextlib.suppress(InvalidStatus):
            async with connect(f"ws://127.0.0.1:{port}/"):
                pass
    assert told == [True]
