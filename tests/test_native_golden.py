"""The native wire, frame for frame: one scripted session against a recorded one.

A native client talks to :class:`AudioProxy` under uvicorn on loopback, through the simulator,
with the real ``websockets`` client: bad controls, a config, a turn of tone and silence streamed
at real-time pace (in frames of odd sizes), a config too late, a turn stopped at its first reply
audio, a turn after the stop, and a frame over the size limit that ends the session. Every frame
out is kept: text frames verbatim (the ``ready`` event's random session id replaced by
``<session>``, its resume token by ``<token>``), binary frames as length and SHA-256; then the
close code and reason. The result must equal ``tests/golden/native_session.json`` exactly. Each
frame is also read through the protocol's client half, which must take every one.

What makes it deterministic: each step waits for the event that ends it (never a sleep); the
simulator's turns end on the audio's content (its VAD), and its reply chunks are spaced far
enough apart (``CHUNK_DELAY_S``) that the stop sent on the first reply audio lands before the
second chunk; its first chunk comes late enough (``FIRST_CHUNK_DELAY_S``) that every message of
a turn has reached it before the reply starts. Reply audio keeps its frame boundaries (each
upstream message is resampled as one piece into one frame, and the resampler's tail is one more
frame before ``turn_end``), so they are compared frame by frame, not as one concatenation.

The recording was made with the native protocol as it was before the session spoke neutral
events; ``python -m tests.test_native_golden PATH`` records a new one from the code at hand.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.native import ConfigControl, StopControl
from asgi_audio_proxy.dialects.native_client import (
    ConfigAppliedMessage,
    ErrorMessage,
    ProxyMessage,
    ReadyMessage,
    TurnEndMessage,
    decode_message,
    encode_control,
)
from asgi_audio_proxy.edge.middleware import AudioProxy
from tests.clients import at_real_time
from tests.conftest import running_simulator
from tests.servers import serve_uvicorn
from tests.signals import silence, tone
from tests.timing import within

GOLDEN = Path(__file__).parent / "golden" / "native_session.json"
#: the simulator's reply timing (see the module docstring)
FIRST_CHUNK_DELAY_S, CHUNK_DELAY_S = 0.3, 0.4
#: client frame sizes, cycled: whole 20 ms frames, odd ones (a byte carried over), a large one
FRAME_SIZES = (640, 1001, 279, 3200, 881)
#: one turn: a second of tone, then a second of silence (the simulator's VAD ends it there)
TONE_S, QUIET_S = 1.0, 1.0
TURN_HZ = (440.0, 660.0, 550.0)
#: larger than ProxyConfig's default max_message_bytes (256 KiB)
OVERSIZE_BYTES = 256 * 1024 + 1

Frame = dict[str, Any]
#: a step is over when this holds for the frames it got
Done = Callable[[list[Frame]], bool]


def frame_record(message: str | bytes) -> Frame:
    if isinstance(message, bytes):
        return {"binary": len(message), "sha256": hashlib.sha256(message).hexdigest()}
    return {"text": message}


class Transcript:
    """Every frame the client got, and the steps of the script they fell in."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Frame] = []
        self.steps: list[dict[str, Any]] = []
        self.close: dict[str, Any] = {}
        self._arrived = asyncio.Event()
        self._mark = 0

    async def read(self) -> None:
        """The reader task: keeps every frame until the connection closes."""
        while True:
            try:
                message = await self.ws.recv()
            except ConnectionClosed:
                self.close = {"code": self.ws.close_code, "reason": self.ws.close_reason}
                self._arrived.set()
                return
            frame = frame_record(message)
            decoded = decode_message(message)
            if isinstance(decoded, ReadyMessage) and isinstance(message, str):
                frame["text"] = message.replace(decoded.session_id, "<session>").replace(
                    decoded.resume_token or "<token>", "<token>")
            self.frames.append(frame)
            self._arrived.set()

    def since_mark(self) -> list[Frame]:
        return self.frames[self._mark:]

    async def wait_for(self, done: Done, timeout_s: float = 15) -> None:
        """Wait until ``done(frames since the step began)`` holds (or the connection closed)."""
        async with asyncio.timeout(within(timeout_s)):
            while not done(self.since_mark()) and not self.close:
                self._arrived.clear()
                await self._arrived.wait()
        assert done(self.since_mark()), f"connection closed {self.close}: {self.since_mark()}"

    def end_step(self, name: str) -> None:
        self.steps.append({"step": name, "frames": self.since_mark()})
        self._mark = len(self.frames)


def has_event(kind: type[ProxyMessage]) -> Done:
    def done(frames: list[Frame]) -> bool:
        return any("text" in f and isinstance(decode_message(f["text"]), kind) for f in frames)
    return done


def has_audio(frames: list[Frame]) -> bool:
    return any("binary" in f for f in frames)


async def send_paced(ws: ClientConnection, pcm: bytes) -> None:
    """Send ``pcm`` at real-time pace (the simulator's VAD needs it) in frames of FRAME_SIZES."""
    start = asyncio.get_running_loop().time()
    offset, i = 0, 0
    while offset < len(pcm):
        size = FRAME_SIZES[i % len(FRAME_SIZES)]
        await ws.send(pcm[offset:offset + size])
        offset, i = offset + size, i + 1
        await at_real_time(start, min(offset, len(pcm)) / 32_000)


def utterance(freq_hz: float) -> bytes:
    return tone(freq_hz, TONE_S) + silence(QUIET_S)


async def control(transcript: Transcript, name: str, text: str, answer: type[ProxyMessage]) -> None:
    await transcript.ws.send(text)
    await transcript.wait_for(has_event(answer))
    transcript.end_step(name)


async def turn(transcript: Transcript, name: str, freq_hz: float, *, stop: bool = False) -> None:
    """One utterance, read until its ``turn_end``; ``stop``: sent as the first reply audio arrives."""
    sender = asyncio.create_task(send_paced(transcript.ws, utterance(freq_hz)))
    try:
        if stop:
            await transcript.wait_for(has_audio)
            await transcript.ws.send(encode_control(StopControl()))
        await transcript.wait_for(has_event(TurnEndMessage))
        async with asyncio.timeout(within(5)):
            await sender
    finally:
        sender.cancel()
    transcript.end_step(name)


async def record_session() -> dict[str, Any]:
    """Run the scripted session through the proxy and return what the client got."""
    async with running_simulator(first_chunk_delay_s=FIRST_CHUNK_DELAY_S,
                                 chunk_delay_s=CHUNK_DELAY_S) as upstream:
        proxy = AudioProxy(ProxyConfig(upstream_url=upstream.url, chunk_duration=0.2))
        try:
            async with serve_uvicorn(proxy) as port:
                ws = await connect(f"ws://127.0.0.1:{port}/", max_size=2**22,
                                   open_timeout=within(10))
                transcript = Transcript(ws)
                reader = asyncio.create_task(transcript.read())
                try:
                    await run_script(transcript)
                    async with asyncio.timeout(within(10)):
                        await reader
                finally:
                    reader.cancel()
                    await ws.close()
        finally:
            await proxy.aclose()
    return {"steps": transcript.steps, "close": transcript.close}


async def run_script(t: Transcript) -> None:
    await t.wait_for(has_event(ReadyMessage))
    t.end_step("connect")
    await control(t, "unknown control", json.dumps({"type": "dance"}), ErrorMessage)
    await control(t, "text that is not JSON", "hello?", ErrorMessage)
    await control(t, "config", encode_control(ConfigControl({"assistantPrompt": "Be brief.",
                                                             "vadThreshold": 0.8})), ConfigAppliedMessage)
    await turn(t, "turn 1", TURN_HZ[0])
    await control(t, "config after audio", encode_control(ConfigControl({})), ErrorMessage)
    await turn(t, "turn 2, stopped at its first audio", TURN_HZ[1], stop=True)
    await turn(t, "turn 3, after the stop", TURN_HZ[2])
    await t.ws.send(bytes(OVERSIZE_BYTES))
    await t.wait_for(lambda frames: bool(t.close))
    t.end_step("a frame over the size limit")


def first_difference(got: dict[str, Any], want: dict[str, Any]) -> str:
    for i, (g, w) in enumerate(zip(got["steps"], want["steps"], strict=False)):
        if g != w:
            for j in range(max(len(g["frames"]), len(w["frames"]))):
                gf = g["frames"][j] if j < len(g["frames"]) else None
                wf = w["frames"][j] if j < len(w["frames"]) else None
                if gf != wf:
                    return f"step {i} ({w['step']!r}), frame {j}: got {gf}, recorded {wf}"
            return f"step {i}: got {g['step']!r}, recorded {w['step']!r}"
    if len(got["steps"]) != len(want["steps"]):
        return f"{len(got['steps'])} steps, recorded {len(want['steps'])}"
    return f"close: got {got['close']}, recorded {want['close']}"


async def test_native_wire_is_the_recorded_one() -> None:
    got = await record_session()
    want = json.loads(GOLDEN.read_text())
    assert got == want, first_difference(got, want)


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(asyncio.run(record_session()), indent=1) + "\n")
