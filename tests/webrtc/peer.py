"""A WebRTC client for the tests: aiortc as the offerer, as a browser app is.

:class:`Peer` sends a microphone track that plays what it is given (then silence, 50 frames a
second, as a browser's does), opens a data channel (``oai-events`` unless told otherwise),
posts its offer to ``/v1/realtime/calls`` and keeps every event and every reply frame it gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from tests.http_clients import http_client
from tests.timing import within

RATE_HZ = 48_000
FRAME_SAMPLES = 960  # 20 ms


class Microphone(MediaStreamTrack):
    """Plays the PCM16 mono 48 kHz it is given, in real time; silence in between."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pcm = bytearray()
        self._start: float | None = None
        self._pts = 0

    def say(self, pcm: bytes) -> None:
        self._pcm += pcm

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._pts += FRAME_SAMPLES
            wait = self._start + self._pts / RATE_HZ - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        pcm = bytes(self._pcm[:FRAME_SAMPLES * 2]).ljust(FRAME_SAMPLES * 2, b"\0")
        del self._pcm[:FRAME_SAMPLES * 2]
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm)
        frame.pts, frame.sample_rate = self._pts, RATE_HZ
        frame.time_base = fractions.Fraction(1, RATE_HZ)
        return frame


class Peer:
    """One call, client side."""

    def __init__(self, channel: str | None = "oai-events", audio: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = Microphone()
        if audio:
            self.pc.addTrack(self.mic)
        self.channel = self.pc.createDataChannel(channel) if channel else None
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.heard: list[tuple[float, bytes]] = []  # (arrival time, PCM16 mono 48 kHz)
        self.opened = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        if self.channel is not None:
            self.channel.on("message", self._on_message)
            self.channel.on("open", self.opened.set)
        self.pc.on("track", self._on_track)

    def _on_message(self, message: str) -> None:
        self.events.append(json.loads(message))
        self.changed.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._listen(track)))

    async def _listen(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame)
                samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
                self.heard.append((loop.time(), samples.astype("<i2").tobytes()))
                self.changed.set()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def call(self, base: str, *, answer: bool = True, timeout_s: float = 5.0,
                   **headers: str) -> httpx.Response:
        """Post the offer; on 201, take the answer (unless told not to: ICE never completes)."""
        async with http_client(timeout=within(timeout_s)) as http:
            response = await http.post(f"{base}/v1/realtime/calls", content=await self.offer(),
                                       headers={"Content-Type": "application/sdp", **headers})
        if response.status_code == 201 and answer:
            await self.pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
        return response

    def send(self, kind: str, **fields: Any) -> None:
        assert self.channel is not None
        self.channel.send(json.dumps({"type": kind, **fields}))

    async def wait_for(self, kind: str, timeout_s: float = 10, after: int = 0) -> dict[str, Any]:
        """The first event of ``kind`` from index ``after`` on, waiting up to ``timeout_s``."""
        try:
            async with asyncio.timeout(within(timeout_s)):
                while True:
                    for event in self.events[after:]:
                        if event["type"] == kind:
                            return event
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {kind} in {[e['type'] for e in self.events[after:]]}") from None

    async def wait_until(self, predicate: Any, timeout_s: float = 10, what: str = "") -> None:
        """Wait until ``predicate()`` holds; on timeout, an ``AssertionError`` naming ``what``
        and what the call had got by then."""
        try:
            async with asyncio.timeout(within(timeout_s)):
                while not predicate():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            pcm = b"".join(chunk for _, chunk in self.heard)
            peak = int(np.abs(np.frombuffer(pcm, "<i2")).max()) if len(pcm) > 1 else 0
            raise AssertionError(f"not within {within(timeout_s):.1f} s: {what or predicate}; "
                                 f"{len(self.heard)} frames heard (peak {peak}), events "
                                 f"{[e['type'] for e in self.events][-12:]}") from None

    def audio_since(self, t: float) -> bytes:
        return b"".join(pcm for when, pcm in self.heard if when >= t)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


def loud(pcm: bytes, threshold: int = 1000) -> bool:
    return bool(len(pcm)) and int(np.abs(np.frombuffer(pcm, "<i2")).max()) > threshold


@contextlib.asynccontextmanager
async def peer(**options: Any) -> AsyncIterator[Peer]:
    p = Peer(**options)
    try:
        yield p
    finally:
        await p.close()
