"""The Realtime upstream's settings: one frozen value per kind of server, chosen by the operator.

Owns: :class:`RealtimeSettings` with its named defaults and validation (a ``ValueError`` that
names the field and the value), and how a conversation's neutral options map onto a
``session.update`` (:meth:`RealtimeSettings.map_options`). Must not: open sockets, read the
environment, or hold a conversation's options (those come as ``UpstreamOptions`` at connect).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ...config import ConversationOptions

__all__ = ["RealtimeSettings", "TurnDetection"]

#: who ends a user's turn: the server's own VAD, or the proxy's detector (commit + response.create)
TurnDetection = Literal["server", "proxy"]

#: what the OpenAI Realtime API takes and gives: PCM16 mono at 24 kHz
DEFAULT_INPUT_RATE_HZ = 24_000
#: the lowest and highest PCM rates a speech server plausibly declares (telephone to studio)
MIN_INPUT_RATE_HZ, MAX_INPUT_RATE_HZ = 8_000, 48_000
#: a dead host should fail fast; a live one answers a WebSocket handshake in milliseconds
DEFAULT_CONNECT_TIMEOUT_S = 5.0
#: each teardown step (the last cancel, the close handshake) gets this long
DEFAULT_CLOSE_TIMEOUT_S = 2.0
#: a model name is sent in the URL and shown in logs: keep it short
MAX_MODEL_CHARS = 128


@dataclass(frozen=True, kw_only=True)
class RealtimeSettings:
    """How the proxy talks to a server that speaks the OpenAI Realtime protocol as a client.

    Attributes:
        api_key: sent as ``Authorization: Bearer <key>``; ``None`` sends no such header. Kept
            out of ``repr`` so it never reaches a log line.
        model: sent as ``?model=`` unless the server's URL already has one; ``None`` sends none.
        beta: speak the beta protocol (``OpenAI-Beta: realtime=v1``, the flat session with
            ``input_audio_format: "pcm16"``, ``response.audio.delta`` and the other beta names),
            for servers that know only those. The beta session cannot declare an input rate.
        input_rate_hz: the PCM16 rate the server takes (the proxy resamples client audio to it,
            once); declared in the GA session as ``audio.input.format.rate``.
        turn_detection: ``server``: the server's own VAD ends each turn and starts the reply.
            ``proxy``: the session update turns the server's VAD off (``turn_detection: null``)
            and the proxy ends turns itself, with ``input_audio_buffer.commit`` and
            ``response.create``, when its own voice detector hears the user stop.
        voice: the server's voice name (``alloy``, ``af_heart``...); ``None`` keeps its default.
        voices: the conversation's voice names (the presets ``female``, ``male``...) mapped to
            the server's own, for a client that asks for a voice. A name not in it is not sent
            (the server's voices are its own: OpenAI's refuses ``male``); :attr:`voice` is sent
            instead. Empty by default; in front of another asgi-audio-proxy, whose Realtime
            dialect knows the presets by name, map them to themselves.
        connect_timeout_s: the WebSocket handshake, and then the answer to the first session
            update, each.
        close_timeout_s: each teardown step.
    """

    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    beta: bool = False
    input_rate_hz: int = DEFAULT_INPUT_RATE_HZ
    turn_detection: TurnDetection = "server"
    voice: str | None = None
    voices: Mapping[str, str] = field(default_factory=dict, hash=False)
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S

    def __post_init__(self) -> None:
        # a key or model with spaces or control characters would break the header or the URL
        _check(self.api_key is None or (isinstance(self.api_key, str) and _is_token(self.api_key)),
               "api_key", "<hidden>", "None or a non-empty string without spaces")
        _check(self.model is None or (isinstance(self.model, str) and _is_token(self.model)
                                      and len(self.model) <= MAX_MODEL_CHARS),
               "model", self.model, f"None or a name of at most {MAX_MODEL_CHARS} printable characters")
        _check(isinstance(self.beta, bool), "beta", self.beta, "True or False")
        _check(type(self.input_rate_hz) is int
               and MIN_INPUT_RATE_HZ <= self.input_rate_hz <= MAX_INPUT_RATE_HZ,
               "input_rate_hz", self.input_rate_hz,
               f"a whole number of Hz from {MIN_INPUT_RATE_HZ} to {MAX_INPUT_RATE_HZ}")
        _check(self.turn_detection in ("server", "proxy"), "turn_detection", self.turn_detection,
               "'server' or 'proxy'")
        _check(self.voice is None or (isinstance(self.voice, str) and bool(self.voice.strip())),
               "voice", self.voice, "None or a non-empty string")
        _check(isinstance(self.voices, Mapping) and all(
                   isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in self.voices.items()),
               "voices", self.voices, "a mapping of voice names to non-empty voice names")
        for name in ("connect_timeout_s", "close_timeout_s"):
            value = getattr(self, name)
            _check(isinstance(value, int | float) and not isinstance(value, bool)
                   and 0 < value < math.inf, name, value, "a positive finite number of seconds")

    def map_options(self, conversation: ConversationOptions) -> dict[str, Any]:
        """The ``session.update`` fields neutral options map to, by their names in both shapes
        (``session_update`` puts ``voice`` where GA or beta keeps it).

        ``instructions`` → ``instructions``; the conversation's voice as :attr:`voices` names it
        for this server, else :attr:`voice` (else none: the server's own) → ``voice``. Not mapped: the
        reference audio (the protocol takes voices by name only) and ``vad_threshold``
        (MiniCPM-o's is the share of the last second that must be silence; a Realtime server's
        ``threshold`` is a speech probability: the server's VAD keeps its own).
        """
        fields: dict[str, Any] = {}
        if conversation.instructions is not None:
            fields["instructions"] = conversation.instructions
        asked = conversation.voice
        voice = self.voices.get(asked, self.voice) if asked is not None else self.voice
        if voice is not None:
            fields["voice"] = voice
        return fields


def _is_token(value: str) -> bool:
    return bool(value) and value.isprintable() and not any(c.isspace() for c in value)


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(f"invalid {name}={value!r}: expected {expected}")
