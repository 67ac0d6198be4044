"""What one load client says on the wire, by dialect: its handshake, its 20 ms frames, its errors.

Owns: the client side of the three dialects as the load generator speaks them. ``native``:
binary PCM16 16 kHz, the marker in each message's first frame (:mod:`benchmarks.marker`), and
when asked (the cross-check) a ``config`` that declares the session too. ``realtime``: after
``session.created``, a ``session.update`` declaring the session in ``instructions``, then one
``input_audio_buffer.append`` (base64 PCM16 24 kHz) per 20 ms. ``twilio``: ``connected`` and
``start`` (the declaration in ``customParameters``), then one ``media`` (base64 μ-law 8 kHz)
per 20 ms, numbered as Twilio numbers them. The audio is silence (μ-law ``0xFF``): detectors
and codecs cost the same on it, and no reply is asked for. What a native server says is read
through the protocol's client half (:mod:`asgi_audio_proxy.dialects.native_client`).
Must not: schedule or time anything (the generator does), or import the proxy's server side.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection

from asgi_audio_proxy.dialects.native import ConfigControl
from asgi_audio_proxy.dialects.native_client import (
    BadProxyMessage,
    ConfigAppliedMessage,
    ErrorMessage,
    ReadyMessage,
    decode_message,
    encode_control,
)

from .marker import FRAME_BYTES, declared_prompt, marked_frame

__all__ = ["DIALECT_PATHS", "ClientWire", "Dialect", "HandshakeFailed", "client_wire"]

Dialect = Literal["native", "realtime", "twilio"]
#: where ``python -m benchmarks.serve proxy --dialects`` serves each dialect
DIALECT_PATHS: dict[str, str] = {"native": "/audio", "realtime": "/v1/realtime", "twilio": "/twilio"}

_SILENT_FRAME = bytes(FRAME_BYTES)
#: 20 ms of 24 kHz PCM16 silence, as every Realtime append of the load carries it
_APPEND = json.dumps({"type": "input_audio_buffer.append",
                      "audio": base64.b64encode(bytes(2 * 480)).decode("ascii")})
#: 20 ms of 8 kHz μ-law silence
_ULAW_SILENCE = base64.b64encode(b"\xff" * 160).decode("ascii")
_TWILIO_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}


class HandshakeFailed(Exception):
    """The server did not open the session the way its dialect promises."""


class ClientWire:
    """One session's client side of a dialect (made by :func:`client_wire`).

    Args:
        dialect: the wire format.
        index: the session's index (marker and declaration).
        declare: a native session also declares itself (so the upstream checks its count
            against the marker); the other dialects always do.
    """

    def __init__(self, dialect: Dialect, index: int, *, declare: bool = False) -> None:
        self.dialect = dialect
        self.index = index
        self.declare = declare or dialect != "native"
        self._stream_sid = f"MZ{index:032d}"
        self._sequence = 1  # Twilio's: "start" is 1, each media message one more

    async def open(self, ws: ClientConnection) -> None:
        """The dialect's opening, up to the moment audio may flow.

        Raises:
            HandshakeFailed: an unexpected first event, or an error in place of the reply.
        """
        if self.dialect == "twilio":  # Twilio speaks first and is told nothing back
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            await ws.send(json.dumps({
                "event": "start", "sequenceNumber": "1", "streamSid": self._stream_sid,
                "start": {"streamSid": self._stream_sid, "callSid": f"CA{self.index:032d}",
                          "accountSid": "AC" + "0" * 32, "tracks": ["inbound"],
                          "mediaFormat": _TWILIO_FORMAT,
                          "customParameters": {"assistantPrompt": declared_prompt(self.index)}}}))
            return
        if self.dialect == "native":
            await self._open_native(ws)
            return
        first = json.loads(await ws.recv())
        if first.get("type") != "session.created":
            raise HandshakeFailed(f"first message {str(first)[:120]!r}")
        await ws.send(json.dumps({"type": "session.update", "session": {
            "type": "realtime", "instructions": declared_prompt(self.index)}}))
        while True:
            event = json.loads(await ws.recv())
            if event.get("type") == "session.updated":
                return
            if (error := self.error_of(event)) is not None:
                raise HandshakeFailed(f"declaring the session: {error}")

    async def _open_native(self, ws: ClientConnection) -> None:
        try:
            first = decode_message(await ws.recv())
            if not isinstance(first, ReadyMessage):
                raise HandshakeFailed(f"first message {first!r:.120}")
            if not self.declare:
                return
            await ws.send(encode_control(ConfigControl({"assistantPrompt": declared_prompt(self.index)})))
            while True:
                message = decode_message(await ws.recv())
                if isinstance(message, ConfigAppliedMessage):
                    return
                if isinstance(message, ErrorMessage):
                    raise HandshakeFailed(f"declaring the session: {message.message[:200]}")
        except BadProxyMessage as exc:
            raise HandshakeFailed(str(exc)) from exc

    def frame(self, message: int, position: int, *, wants_reply: bool = False) -> str | bytes:
        """Frame ``position`` (0-9) of 200 ms message ``message``."""
        if self.dialect == "native":
            if position == 0:
                return marked_frame(self.index, message, wants_reply=wants_reply)
            return _SILENT_FRAME
        if self.dialect == "realtime":
            return _APPEND
        self._sequence += 1
        chunk = self._sequence - 1
        return json.dumps({"event": "media", "sequenceNumber": str(self._sequence),
                           "streamSid": self._stream_sid,
                           "media": {"track": "inbound", "chunk": str(chunk),
                                     "timestamp": str(20 * (chunk - 1)), "payload": _ULAW_SILENCE}})

    def error_of(self, event: dict[str, Any]) -> str | None:
        """The error a Realtime event reports, or ``None`` (Twilio is never sent one; a native
        server's messages are read with the protocol's client half)."""
        if event.get("type") != "error":
            return None
        return str((event.get("error") or {}).get("message"))[:200]


def client_wire(dialect: str, index: int, *, declare: bool = False) -> ClientWire:
    """The :class:`ClientWire` for ``dialect`` (``ValueError`` for an unknown one)."""
    if dialect not in DIALECT_PATHS:
        raise ValueError(f"invalid dialect={dialect!r}: expected one of {sorted(DIALECT_PATHS)}")
    return ClientWire(dialect, index, declare=declare)  # type: ignore[arg-type]
