"""The gateway simulator on a loopback port, and a raw client of it that checks every event it
gets against the protocol's schema.

``async with gateway(**options) as gw``: a :class:`GatewaySimulator` under uvicorn; ``gw.url`` is
its ``http://`` URL, ``gw.ws_url(...)`` its ``/v1/realtime`` one. ``async with RawClient.open(url)
as c``: a ``websockets`` connection with :meth:`RawClient.next` (one server event, checked) and
:meth:`RawClient.append` (PCM16 sent as the protocol's float32).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from asgi_audio_proxy.simulator.minicpm_demo import GatewaySimulator
from tests.servers import serve_uvicorn
from tests.timing import within

from .schema import check_server

__all__ = ["Gateway", "RawClient", "float_samples", "gateway"]


@dataclass
class Gateway:
    sim: GatewaySimulator
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, query: str = "mode=audio") -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime?{query}"


@contextlib.asynccontextmanager
async def gateway(**options: Any) -> AsyncIterator[Gateway]:
    sim = GatewaySimulator(**options)
    async with serve_uvicorn(sim) as port:
        yield Gateway(sim, port)


def float_samples(pcm: bytes) -> str:
    """PCM16 as the protocol's base64 float32."""
    samples = np.frombuffer(pcm, "<i2").astype("<f4") / 32768
    return base64.b64encode(samples.astype("<f4").tobytes()).decode()


class RawClient:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.events: list[dict[str, Any]] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str) -> AsyncIterator[RawClient]:
        async with connect(url, open_timeout=within(10), max_size=2**22) as conn:
            yield cls(conn)

    async def next(self, timeout_s: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(within(timeout_s)):
            frame = await self.conn.recv()
        assert isinstance(frame, str)
        event = check_server(frame)
        self.events.append(event)
        return event

    async def send(self, event: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(event))

    async def append(self, pcm: bytes, *, force_listen: bool | None = None) -> None:
        event: dict[str, Any] = {"type": "input_audio_buffer.append", "audio": float_samples(pcm)}
        if force_listen is not None:
            event["force_listen"] = force_listen
        await self.send(event)

    async def start(self, instructions: str = "Be brief.") -> dict[str, Any]:
        """Wait for ``queue_done``, send the session update, return ``session.created``."""
        assert (await self.next())["type"] == "session.queue_done"
        await self.send({"type": "session.update", "session": {"instructions": instructions}})
        created = await self.next()
        assert created["type"] == "session.created", created
        return created
