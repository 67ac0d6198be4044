"""Helpers for the Realtime dialect's tests: handshake scopes, client events, and the check of
every server event against the official SDK's pydantic types."""

from __future__ import annotations

import base64
import importlib
import json
from typing import Any

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.base import Frame
from asgi_audio_proxy.dialects.realtime import RealtimeDialect, realtime_dialect


class OfficialEvents:
    """One of the official SDK's unions of events (``RealtimeServerEvent`` of ``module``...), as a
    pydantic adapter built at its first use: importing the SDK's types takes a second or two of
    CPU, which every test worker would pay at collection for tests that may run elsewhere."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name
        self._adapter: Any = None

    def validate_python(self, event: Any, *, strict: bool = False) -> Any:
        if self._adapter is None:
            from pydantic import TypeAdapter

            self._adapter = TypeAdapter(getattr(importlib.import_module(self.module), self.name))
        return self._adapter.validate_python(event, strict=strict)


GA_EVENTS = OfficialEvents("openai.types.realtime", "RealtimeServerEvent")
BETA_EVENTS = OfficialEvents("openai.types.beta.realtime", "RealtimeServerEvent")


def scope(*, query: str = "", headers: dict[str, str] | None = None,
          subprotocols: list[str] | None = None) -> dict[str, Any]:
    """A WebSocket handshake scope for ``/v1/realtime``."""
    return {
        "type": "websocket", "path": "/v1/realtime", "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "subprotocols": subprotocols or [],
    }


def dialect(*, beta: bool = False, **config: Any) -> RealtimeDialect:
    headers = {"OpenAI-Beta": "realtime=v1"} if beta else {}
    return realtime_dialect(scope(query="model=gpt-realtime", headers=headers), ProxyConfig(**config))


def client(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def append(pcm: bytes, **fields: Any) -> str:
    return client("input_audio_buffer.append", audio=base64.b64encode(pcm).decode(), **fields)


def checked(frames: list[Frame], protocol: str = "ga") -> list[dict[str, Any]]:
    """Parse server frames, each validated strictly against the official type of its event."""
    adapter = BETA_EVENTS if protocol == "beta" else GA_EVENTS
    events = []
    for frame in frames:
        assert isinstance(frame, str)
        event = json.loads(frame)
        adapter.validate_python(event, strict=True)
        events.append(event)
    return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


class Recorder:
    """Drives one dialect and keeps every server event it produced, validated."""

    def __init__(self, d: RealtimeDialect) -> None:
        self.d = d
        self.events: list[dict[str, Any]] = []

    def send(self, event: Any) -> list[dict[str, Any]]:
        out = checked(self.d.send(event), self.d.protocol)
        self.events += out
        return out

    def receive(self, frame: Frame) -> list[Any]:
        """Client frame in; own answers (``DialectFrames``) are checked and recorded."""
        from asgi_audio_proxy.events import DialectFrames

        result = self.d.receive(frame)
        for event in result:
            if isinstance(event, DialectFrames):
                self.events += checked(list(event.frames), self.d.protocol)
        return result


def rejected(rec: Recorder, frame: Frame) -> dict[str, Any]:
    """Feed a bad frame as the session would: the error it raises comes back as an ErrorEvent;
    returns the ``error`` object the client is sent."""
    import pytest

    from asgi_audio_proxy.errors import ClientError
    from asgi_audio_proxy.events import ErrorEvent

    with pytest.raises(ClientError) as info:
        rec.receive(frame)
    exc = info.value
    [event] = [e for e in rec.send(ErrorEvent(exc.kind, exc.message, exc.close_code)) if e["type"] == "error"]
    error: dict[str, Any] = event["error"]
    return error
