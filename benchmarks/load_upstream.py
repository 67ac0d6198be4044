"""The load upstream: a minimal stand-in for the model server that many sessions share at once.

Owns: just enough of the upstream protocol for load runs (``UPSTREAM_PROTOCOL.md`` sections 2.2,
2.4, 2.5, 3 and 4.1), state per uid, and the arrival time (``time.perf_counter()``, which is
``CLOCK_MONOTONIC`` and so comparable across processes on Linux) of every audio message, for the
proxy's JSON/WAV/base64 messages on ``/ws/stream`` and for the bare relay's raw binary pieces on
``/bench/raw`` alike. Must not: import the proxy's session or upstream modules.

Why not :class:`asgi_audio_proxy.simulator.app.UpstreamSimulator` in its ``multi_conversation`` mode:
it refuses binary frames (so the bare relay could not use it), it runs a VAD and a stand-in model
on every message (CPU that would compete with the proxy on a 2-core machine and blur the figure),
and it keeps every accepted chunk per uid (unbounded memory over a soak). The simulator is still
what the turn-taking figures (first reply audio, barge-in) run against.

Each audio message's first samples carry a marker the load generator writes (see
:mod:`benchmarks.marker`): session index, message index and a "reply now" flag. A session whose
audio is resampled on the way (Realtime, Twilio) declares its index in the assistant prompt
instead; its messages are numbered per uid as they arrive. Where a session does both (the
native cross-check), the two must agree, or the message counts as misnumbered. On that flag the
uid's waiting ``/completions`` body plays a reply: the echo, ``REPLY_CHUNKS`` 2.6-style chunks
(24 kHz, 12 800 samples) whose text is the upstream's ``perf_counter`` at the moment of writing,
then ``<end>``; so the client can time the reply path without a shared log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Message, Receive, Scope, Send

from asgi_audio_proxy.audio import pcm16_to_wav
from tests.signals import tone

from .marker import read_declared, read_marker

__all__ = ["REPLY_CHUNKS", "LoadUpstream"]

#: chunks per reply: 8 x 0.53 s of 24 kHz audio, a typical short answer
REPLY_CHUNKS = 8
#: between reply chunks; far faster than real time, as the real model sends them
REPLY_INTERVAL_S = 0.02
_REPLY_SAMPLES = 12_800
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
_JSON_HEADERS = [(b"content-type", b"application/json")]
_DATA_KEY = b'"data":"'


def _reply_audio_b64() -> str:
    pcm = tone(440, _REPLY_SAMPLES / 24_000, 24_000, amplitude=6000 / 32767)
    return base64.b64encode(pcm16_to_wav(pcm, 24_000)).decode("ascii")


class LoadUpstream:
    """The ASGI app; ``arrivals`` holds ``(session, message, perf_counter)`` per audio message."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[int, int, float]] = []
        self.unmarked = 0  # audio messages without a readable marker (should stay 0)
        self.misnumbered = 0  # marker and arrival count disagree for a declared session
        self._counted: list[tuple[str, int, float]] = []  # (uid, message, t) without a marker
        self._declared: dict[str, int] = {}  # uid -> session index, from /init_options
        self._received: dict[str, int] = defaultdict(int)  # audio messages per uid so far
        self._open: set[str] = set()  # uids whose audio WebSocket is open
        self._triggers: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._reply_b64 = _reply_audio_b64()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind, path = scope["type"], scope.get("path", "").removeprefix("/api/v1")
        if kind == "lifespan":
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await send({"type": "lifespan.shutdown.complete"})
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif path == "/completions":
            await self._completions(_uid(scope), receive, send)
        elif path == "/bench/streams":  # how many conversations are open, and declared
            declared = sum(uid in self._declared for uid in self._open)
            await _respond(send, 200, json.dumps({"open": len(self._open), "declared": declared}).encode())
        elif path == "/bench/arrivals":
            await _respond(send, 200, json.dumps(self._take_arrivals()).encode())
        else:  # /init_options, /stop, /health: drain the body, answer like the upstream
            body = await _drain(receive)
            if path == "/init_options":
                self._note_declared(_uid(scope), body)
            content = "2.6" if path == "/init_options" else "success"
            await _respond(send, 200, json.dumps(
                {"id": _uid(scope), "choices": {"role": "assistant", "content": content,
                                                "finish_reason": "done"}}).encode())

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        uid = parse_qs(scope.get("query_string", b"").decode()).get("uid", ["raw"])[0]
        ack = json.dumps({"id": uid, "choices": {"role": "assistant", "content": "success",
                                                 "finish_reason": "done"}}, separators=(",", ":"))
        raw = scope["path"] == "/bench/raw"
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        self._open.add(uid)
        while True:
            message = await receive()
            now = time.perf_counter()
            if message["type"] == "websocket.disconnect":
                self._triggers.pop(uid, None)
                self._open.discard(uid)
                self._received.pop(uid, None)  # its declaration stays until the arrivals are taken
                return
            marker = _marker_of(message, raw)
            count = self._received[uid]
            self._received[uid] = count + 1
            if marker is None:
                if raw:
                    self.unmarked += 1
                else:
                    self._counted.append((uid, count, now))
            else:
                session, index, wants_reply = marker
                self.arrivals.append((session, index, now))
                if uid in self._declared and (self._declared[uid], count) != (session, index):
                    self.misnumbered += 1
                if wants_reply and not raw:
                    self._triggers[uid].set()
            await send({"type": "websocket.send", "text": ack})

    def _note_declared(self, uid: str, body: bytes) -> None:
        try:
            content = json.loads(body)["messages"][0]["content"]
            prompt = next(c["options"].get("assistant_prompt") for c in content if c.get("type") == "options")
        except (ValueError, LookupError, TypeError, AttributeError, StopIteration):
            return
        session = read_declared(prompt)
        if session is not None:
            self._declared[uid] = session

    def _take_arrivals(self) -> dict[str, Any]:
        """Every arrival since the last call, counted ones under their declared session."""
        arrivals = list(self.arrivals)
        for uid, index, t in self._counted:
            if uid in self._declared:
                arrivals.append((self._declared[uid], index, t))
            else:
                self.unmarked += 1
        taken = {"arrivals": arrivals, "unmarked": self.unmarked, "misnumbered": self.misnumbered}
        self.arrivals, self._counted, self.unmarked, self.misnumbered = [], [], 0, 0
        self._declared = {uid: n for uid, n in self._declared.items() if uid in self._received}
        return taken

    async def _completions(self, uid: str, receive: Receive, send: Send) -> None:
        await _drain(receive)
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        trigger = self._triggers[uid]
        gone = asyncio.ensure_future(_wait_disconnect(receive))
        fired = asyncio.ensure_future(trigger.wait())
        try:
            await asyncio.wait({gone, fired}, return_when=asyncio.FIRST_COMPLETED)
            if gone.done():
                return
            trigger.clear()
            await self._play_reply(uid, send)
        finally:
            gone.cancel()
            fired.cancel()

    async def _play_reply(self, uid: str, send: Send) -> None:
        echo = _data(uid, 0, self._reply_b64, "assistant:\n")
        await _chunk(send, b"event: message\n" + echo)
        for k in range(REPLY_CHUNKS):
            await asyncio.sleep(REPLY_INTERVAL_S)
            # the text is the send time: the client times the reply path from it
            await _chunk(send, _data(uid, k + 1, self._reply_b64, f"{time.perf_counter():.6f}"))
        await _chunk(send, _data(uid, REPLY_CHUNKS, None, "\n<end>"))
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _marker_of(message: Message, raw: bool) -> tuple[int, int, bool] | None:
    if raw:
        data = message.get("bytes")
        return read_marker(data) if data else None
    text = message.get("text")
    if text is None:
        return None
    encoded = text.encode("ascii", "replace") if isinstance(text, str) else text
    at = encoded.find(_DATA_KEY)
    if at < 0:
        return None
    start = at + len(_DATA_KEY)
    try:  # 72 base64 characters: the 44-byte WAV header and the marker's samples
        head = base64.b64decode(encoded[start : start + 72])
    except ValueError:
        return None
    return read_marker(head[44:])


def _data(uid: str, response_id: int, audio: str | None, text: str) -> bytes:
    payload: dict[str, Any] = {"id": uid, "response_id": response_id, "choices": [
        {"role": "assistant", "audio": audio, "text": text, "finish_reason": "processing"}]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _uid(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"uid":
            return str(value.decode("latin-1"))
    return ""


async def _chunk(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if message["type"] != "http.request" or not message.get("more_body"):
            return bytes(body)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
