"""The vLLM-Omni duplex upstream's settings: one frozen value per kind of server, chosen by the operator.

Owns: :class:`DuplexSettings` with its named defaults and validation (a ``ValueError`` that
names the field and the value). Must not: open sockets, read files or the environment, or know
a conversation's options (those come as ``UpstreamOptions`` at connect).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from ...audio.wav import pcm16_to_wav
from ...config import ConversationOptions
from .voice import default_reference_voice, wav_data_url

__all__ = ["DuplexSettings", "OverlapPolicy"]

#: what the server does with user speech over a reply: nothing by itself (the proxy's barge-in
#: decides, and sends ``barge_in``), or cut the reply itself
OverlapPolicy = Literal["listen_only", "barge_in_on_speech"]

#: the model a MiniCPM-o 4.5 duplex deploy serves
DEFAULT_MODEL = "openbmb/MiniCPM-o-4_5"
#: what ``DuplexClient`` sends: the server refreshes the session's engine lease on each
DEFAULT_HEARTBEAT_INTERVAL_S = 30.0
#: a dead host should fail fast; a live one answers a WebSocket handshake in milliseconds
DEFAULT_CONNECT_TIMEOUT_S = 5.0
#: each teardown step (``session.close`` and its answer, the close handshake) gets this long
DEFAULT_CLOSE_TIMEOUT_S = 2.0
#: a dropped socket is resumed within this; the server holds the session for 30 s by default
DEFAULT_RESUME_TIMEOUT_S = 10.0
#: the model hears in 1 s units and says nothing until a unit is full: after the client's last
#: audio, silence keeps its input flowing this long, so the model hears the turn end
DEFAULT_TRAILING_SILENCE_S = 2.0
#: a gap in the client's audio longer than this is filled with silence while input must flow
DEFAULT_MAX_INPUT_GAP_S = 0.2
MAX_MODEL_CHARS = 128


@dataclass(frozen=True, kw_only=True)
class DuplexSettings:
    """How the proxy talks to vLLM-Omni's full-duplex ``/v1/realtime``.

    Attributes:
        model: the served model, sent as ``?model=`` and in the session.
        ref_audio: the assistant's reference voice, a WAV file's bytes (the MiniCPM-o preset
            requires one); ``None``: a short voice packaged with the proxy.
        overlap_policy: ``listen_only`` (the default: barge-in is the proxy's, by its own
            policy) or ``barge_in_on_speech`` (the server cuts a reply it hears speech over).
        heartbeat_interval_s: ``session.heartbeat`` every this many seconds; ``None``: none.
        trailing_silence_s: after the client's last audio, silence keeps flowing this long.
        max_input_gap_s: a pause in the client's audio longer than this is filled with silence
            while a reply plays or the trailing silence runs (the model needs input to speak).
        connect_timeout_s: the handshake, then the answer to the session update, each.
        close_timeout_s: each teardown step.
        resume_timeout_s: how long a dropped socket is tried again with ``session.resume``.
    """

    model: str = DEFAULT_MODEL
    ref_audio: bytes | None = None
    overlap_policy: OverlapPolicy = "listen_only"
    heartbeat_interval_s: float | None = DEFAULT_HEARTBEAT_INTERVAL_S
    trailing_silence_s: float = DEFAULT_TRAILING_SILENCE_S
    max_input_gap_s: float = DEFAULT_MAX_INPUT_GAP_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S
    resume_timeout_s: float = DEFAULT_RESUME_TIMEOUT_S

    def __post_init__(self) -> None:
        _check(isinstance(self.model, str) and 0 < len(self.model) <= MAX_MODEL_CHARS
               and self.model.isprintable() and not any(c.isspace() for c in self.model),
               "model", self.model, f"a name of at most {MAX_MODEL_CHARS} printable characters")
        _check(self.ref_audio is None or (isinstance(self.ref_audio, bytes) and
                                          self.ref_audio[:4] == b"RIFF"),
               "ref_audio", "<bytes>" if self.ref_audio else self.ref_audio, "None or a WAV file's bytes")
        _check(self.overlap_policy in ("listen_only", "barge_in_on_speech"), "overlap_policy",
               self.overlap_policy, "'listen_only' or 'barge_in_on_speech'")
        _check(self.heartbeat_interval_s is None or _positive(self.heartbeat_interval_s),
               "heartbeat_interval_s", self.heartbeat_interval_s, "None or a positive number of seconds")
        for name in ("trailing_silence_s", "max_input_gap_s", "connect_timeout_s", "close_timeout_s",
                     "resume_timeout_s"):
            value = getattr(self, name)
            _check(_positive(value), name, value, "a positive finite number of seconds")

    def map_options(self, conversation: ConversationOptions) -> dict[str, Any]:
        """The ``session.update`` fields neutral options map to.

        ``instructions`` → ``instructions``; the conversation's reference audio (else
        :attr:`ref_audio`, else the packaged voice) → ``ref_audio``, a WAV data URL. Not mapped:
        a voice by name (MiniCPM-o's duplex session clones ``ref_audio`` only) and
        ``vad_threshold`` (the model owns the turns: there is no VAD to tune).
        """
        fields: dict[str, Any] = {}
        if conversation.instructions is not None:
            fields["instructions"] = conversation.instructions
        if conversation.reference_audio is not None:
            wav = pcm16_to_wav(conversation.reference_audio, conversation.reference_rate_hz)
        else:
            wav = self.ref_audio or default_reference_voice()
        fields["ref_audio"] = wav_data_url(wav)
        return fields

    def __repr__(self) -> str:  # the voice is kilobytes: its size only
        voice = f"<{len(self.ref_audio)} bytes>" if self.ref_audio else None
        return (f"DuplexSettings(model={self.model!r}, ref_audio={voice}, "
                f"overlap_policy={self.overlap_policy!r}, heartbeat_interval_s={self.heartbeat_interval_s})")


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(f"invalid {name}={value!r}: expected {expected}")
