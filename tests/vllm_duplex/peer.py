"""A raw duplex client for the tests: a websockets connection to the simulated duplex server,
sending the client events of vLLM-Omni's ``realtime_duplex_api.md`` examples as written there.

``async with duplex_peer(url) as peer``: ``peer.send(event)``, ``peer.update()`` (the docs'
opening ``session.update``, with a voice), ``peer.append(pcm)`` in 100 ms appends, ``peer.next()``,
``peer.until(type)``; every event read is kept in ``peer.events``. Also
:func:`running_duplex_simulator`, the simulator on a loopback port.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from asgi_audio_proxy.audio.wav import pcm16_to_wav
from asgi_audio_proxy.simulator.vllm_duplex import DuplexSimulator
from tests.clients import next_json
from tests.servers import serve_uvicorn
from tests.timing import within

__all__ = ["APPEND_BYTES", "OPENING", "DuplexPeer", "Running", "duplex_peer", "running_duplex_simulator"]

#: 100 ms of 16 kHz PCM16, what ``DuplexClient`` appends
APPEND_BYTES = 3_200
#: the docs' opening ``session.update`` (a second of a 140 Hz hum as the voice)
OPENING: dict[str, Any] = {"type": "session.update", "event_id": "evt_0001", "session": {
    "model": "openbmb/MiniCPM-o-4_5", "session_id": "sess_demo_01", "modalities": ["audio", "text"],
    "instructions": "You are a concise voice assistant.", "input_audio_format": "pcm16",
    "output_audio_format": "pcm16", "turn_detection": None, "overlap_policy": "listen_only",
    "playback_commit_policy": "ack_only", "temperature": 0.7, "idle_timeout_s": 300,
    "extra_body": {"auto_response": True, "native_duplex": True, "force_listen_count": 0},
    "ref_audio": "data:audio/wav;base64," + base64.b64encode(pcm16_to_wav(bytes(32_000))).decode()}}


@dataclass
class Running:
    sim: DuplexSimulator
    port: int

    def url(self, query: str = "duplex=1") -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime?{query}"


@contextlib.asynccontextmanager
async def running_duplex_simulator(**options: Any) -> AsyncIterator[Running]:
    sim = DuplexSimulator(**options)
    try:
        async with serve_uvicorn(sim) as port:
            yield Running(sim, port)
    finally:
        sim.close()


class DuplexPeer:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.events: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any] | str) -> None:
        await self.conn.send(event if isinstance(event, str) else json.dumps(event))

    async def update(self, **session: Any) -> None:
        """The docs' opening ``session.update``, with ``session`` keys replaced."""
        await self.send({**OPENING, "session": {**OPENING["session"], **session}})

    async def append(self, pcm: bytes) -> None:
        for start in range(0, len(pcm), APPEND_BYTES):
            chunk = base64.b64encode(pcm[start:start + APPEND_BYTES]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": chunk})

    async def next(self, timeout_s: float = 10) -> dict[str, Any]:
        event = await next_json(self.conn, timeout_s)
        self.events.append(event)
        return event

    async def until(self, kind: str, timeout_s: float = 10) -> dict[str, Any]:
        """Read up to and including the next event of ``kind``."""
        while (event := await self.next(timeout_s))["type"] != kind:
            pass
        return event

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def audio(self) -> bytes:
        return b"".join(base64.b64decode(e["delta"]) for e in self.of("response.output_audio.delta"))


@contextlib.asynccontextmanager
async def duplex_peer(url: str) -> AsyncIterator[DuplexPeer]:
    async with connect(url, max_size=2**22, open_timeout=within(10)) as conn:
        yield DuplexPeer(conn)
