"""Shared pieces of the simulator tests: the upstream's wire frames (the hand-driven clock is
``tests.timing.FakeClock``)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from asgi_audio_proxy.audio import MESSAGE_BYTES, pcm16_to_wav
from asgi_audio_proxy.simulator.app import UpstreamSimulator
from tests.http_clients import http_client
from tests.servers import serve_uvicorn
from tests.signals import silence, tone
from tests.timing import FakeClock, within

OPTIONS = {"hd_video": False, "use_audio_prompt": 1, "vad_threshold": 0.8,
           "voice_clone_prompt": "Imitate.", "assistant_prompt": "Brief."}
SPEECH = tone(440, 1.0) + silence(1.2)  # the VAD ends this turn at its 10th message


def pieces(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + MESSAGE_BYTES] for i in range(0, len(pcm), MESSAGE_BYTES)]


def audio_message(pcm: bytes, *, raw: bool = False) -> dict[str, Any]:
    data = pcm if raw else pcm16_to_wav(pcm)
    item = {"type": "input_audio",
            "input_audio": {"data": base64.b64encode(data).decode(), "format": "wav", "timestamp": "1"}}
    return {"role": "user", "content": [item]}


def frame(pcm: bytes, uid: str = "U1", *, raw: bool = False) -> str:
    return json.dumps({"uid": uid, "messages": [audio_message(pcm, raw=raw)]})


def ack(uid: str, reason: str, content: str = "success") -> str:
    choices = {"role": "assistant", "content": content, "finish_reason": reason}
    return json.dumps({"id": uid, "choices": choices}, separators=(",", ":"))


# -- over real sockets


@contextlib.asynccontextmanager
async def running(sim: UpstreamSimulator) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with serve_uvicorn(sim, timeout_graceful_shutdown=1) as port:
        base = f"http://127.0.0.1:{port}"
        async with http_client(base_url=base, timeout=httpx.Timeout(within(10))) as client:
            yield client, f"ws://127.0.0.1:{port}"


async def read_body(
    client: httpx.AsyncClient, uid: str, parts: asyncio.Queue[bytes] | None = None
) -> bytes:
    body = b""
    async with client.stream("POST", "/api/v1/completions", headers={"uid": uid},
                             json={"messages": [{"role": "user", "content": [{"type": "none"}]}],
                                   "stream": True}) as response:
        assert response.status_code == 200
        async for part in response.aiter_raw():
            body += part
            if parts is not None:
                parts.put_nowait(part)
    return body


async def open_completions(
    sim: UpstreamSimulator, client: httpx.AsyncClient, uid: str
) -> asyncio.Task[bytes]:
    count = len(sim.recorder.completions_uids)
    task = asyncio.create_task(read_body(client, uid))
    await sim.recorder.wait_for(lambda r: len(r.completions_uids) > count, timeout=within(5))
    return task


async def speak(ws: ClientConnection, pcm: bytes, uid: str, clock: FakeClock | None) -> list[str]:
    reasons = []
    for piece in pieces(pcm):
        if clock is not None:
            clock.now += 0.2
        await ws.send(frame(piece, uid))
        answer = json.loads(await ws.recv())
        reasons.append(answer["choices"]["finish_reason"] if "choices" in answer else answer["error"])
    return reasons


def sse_messages(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in body.decode().split("\n") if line.startswith("data: ")]
