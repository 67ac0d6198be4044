"""Faults on a real socket: each bad Realtime event is answered with the real API's ``error``
event and the session goes on; a flood of events ends it with 1008, and the client waiting for
the model server (the simulator serves one conversation at a time) is served next."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.clients import next_json
from tests.signals import tone

from .realtime_support import GA_EVENTS
from .test_realtime_sdk import KEY, realtime_proxy


@contextlib.asynccontextmanager
async def client(base_url: str) -> AsyncIterator[ClientConnection]:
    async with connect(base_url + "/realtime?model=gpt-realtime",
                       additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        assert (await next_event(ws))["type"] == "session.created"
        yield ws


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    """The next event, checked against the official SDK's type of it."""
    event = await next_json(ws)
    GA_EVENTS.validate_python(event, strict=True)
    return event


def append(pcm: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


BAD = [
    ('{"type": "session.update", ', "invalid_json", None),
    (json.dumps({"type": "response.make", "event_id": "evt_1"}), "invalid_value", "type"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}), "invalid_value", "audio"),
    (json.dumps({"type": "session.update",
                 "session": {"audio": {"input": {"format": {"type": "audio/L16"}}}}}),
     "invalid_value", "session.audio.input.format.type"),
    (append(bytes(300 * 1024)), "message_too_large", None),
]


@pytest.mark.parametrize(("frame", "code", "param"), BAD, ids=[c for _, c, _ in BAD])
async def test_bad_event_gets_the_real_error_and_the_session_goes_on(frame: str, code: str,
                                                                       param: str | None) -> None:
    async with realtime_proxy() as base_url, client(base_url) as ws:
        await ws.send(frame)
        error = await next_event(ws)
        assert error["type"] == "error"
        assert (error["error"]["type"], error["error"]["code"], error["error"]["param"]) == (
            "invalid_request_error", code, param)
        # still open and working: a clear is answered
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert (await next_event(ws))["type"] == "input_audio_buffer.cleared"


async def test_a_flood_of_events_ends_the_session_with_1008_and_spares_the_next_client() -> None:
    async with realtime_proxy(max_text_frames_per_s=5) as base_url, client(base_url) as ws, \
            client(base_url) as waiting:
        await waiting.send(append(tone(440, 0.1, 24_000)))
        await waiting.send(json.dumps({"type": "input_audio_buffer.clear"}))
        for _ in range(20):
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        errors = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                event = await next_event(ws)
                if event["type"] == "error":
                    errors.append(event["error"])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert errors and errors[-1]["code"] == "policy_violation"
        assert (await next_event(waiting))["type"] == "input_audio_buffer.cleared"
