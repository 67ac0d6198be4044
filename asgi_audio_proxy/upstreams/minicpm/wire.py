"""The MiniCPM-o model server's wire formats, encoded and decoded without I/O.

Owns: the audio message (section 3.2), the ``/init_options`` and ``/completions`` bodies
(sections 2.2, 2.4), acknowledgements (3.3) and the SSE ``data`` payloads (4.1-4.3), read
tolerantly as section 7 advises (``audio`` null, ``""`` or missing; ``<end>`` as a substring).
Must not: import asyncio or a network library.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, replace
from typing import Any

from ...audio.wav import pcm16_to_wav
from ...config import ConversationOptions, UpstreamOptions
from ...errors import UpstreamError, UpstreamProtocolError

__all__ = [
    "COMPLETIONS_BODY",
    "Ack",
    "AudioMessages",
    "ReplyError",
    "ReplyMessage",
    "UpstreamEvent",
    "ack_error",
    "audio_message",
    "init_options_body",
    "make_uid",
    "minicpm_options",
    "parse_ack",
    "parse_reply_data",
    "parse_version",
]

#: what the official client posts to /completions; the server parses and ignores it (2.4)
COMPLETIONS_BODY: dict[str, Any] = {
    "messages": [{"role": "user", "content": [{"type": "none"}]}],
    "stream": True,
}
_UID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def make_uid() -> str:
    """A fresh conversation id in the official client's form (10 base-36 characters)."""
    return "".join(secrets.choice(_UID_ALPHABET) for _ in range(10))


def audio_message(pcm: bytes, uid: str, timestamp_ms: int) -> str:
    """One 200 ms message: PCM16 16 kHz mono wrapped as WAV, base64, in the server's JSON."""
    return AudioMessages(uid).message(pcm, timestamp_ms)


#: stand-ins for the base64 audio and the timestamp in the envelope (the quotes are JSON's)
_DATA_STAND_IN, _TIMESTAMP_STAND_IN = '"@data@"', '"@timestamp@"'


class AudioMessages:
    """One conversation's audio messages (section 3.2), its envelope made once.

    Each message is the same text as ``json.dumps`` of the whole, made in a fraction of its
    time: ``json.dumps`` checks each of the 8 600 base64 characters for escapes, which base64
    never needs (30 µs a message, the largest part of the proxy's work at the instant every
    session's message falls due). The envelope around the two values is ``json.dumps``'s,
    made once with stand-ins for them; the values go in as they are.

    Args:
        uid: the conversation's id.
    """

    def __init__(self, uid: str) -> None:
        self._uid = uid
        self._envelope = _audio_envelope(uid)

    def message(self, pcm: bytes, timestamp_ms: int) -> str:
        """One message of ``pcm`` (PCM16 16 kHz mono) sent at ``timestamp_ms``."""
        data = base64.b64encode(pcm16_to_wav(pcm)).decode("ascii")
        if self._envelope is None:  # a uid that reads as a stand-in: the whole message the slow way
            return json.dumps(_audio_message_body(self._uid, data, str(timestamp_ms)),
                              separators=(",", ":"))
        head, middle, tail = self._envelope
        return f"{head}{data}{middle}{timestamp_ms:d}{tail}"


def _audio_message_body(uid: str, data: str, timestamp: str) -> dict[str, Any]:
    item = {"type": "input_audio", "input_audio": {"data": data, "format": "wav", "timestamp": timestamp}}
    return {"uid": uid, "messages": [{"role": "user", "content": [item]}]}


def _audio_envelope(uid: str) -> tuple[str, str, str] | None:
    """The audio message's JSON cut where its two values go (their quotes kept), or ``None``
    when a stand-in shows up elsewhere too (a uid spelled as one)."""
    text = json.dumps(_audio_message_body(uid, "@data@", "@timestamp@"), separators=(",", ":"))
    if text.count(_DATA_STAND_IN) != 1 or text.count(_TIMESTAMP_STAND_IN) != 1:
        return None
    head, _, rest = text.partition(_DATA_STAND_IN)
    middle, _, tail = rest.partition(_TIMESTAMP_STAND_IN)
    return head + '"', '"' + middle + '"', '"' + tail


def minicpm_options(conversation: ConversationOptions, base: UpstreamOptions | None = None
                    ) -> dict[str, Any]:
    """The ``/init_options`` body that neutral options map to, all five keys (sections 2.2, 5.6).

    ``instructions`` → ``assistant_prompt``; a preset voice (``default``, ``female``...) →
    ``use_audio_prompt`` (the server has presets only: another name keeps ``base``'s);
    ``reference_audio`` → ``input_audio.data`` as a WAV file (2.6 and 4.5 store it and use
    neither: the voice still comes from the preset); ``vad_threshold`` → ``vad_threshold``. What
    ``conversation`` leaves ``None``, and the keys only this server has (``voice_clone_prompt``,
    ``hd_video``, ``audio_format``), come from ``base`` (the defaults when omitted).
    """
    base = base or UpstreamOptions()
    preset = conversation.preset
    options = replace(
        base,
        assistant_prompt=base.assistant_prompt if conversation.instructions is None
        else conversation.instructions,
        use_audio_prompt=base.use_audio_prompt if preset is None else preset,
        vad_threshold=base.vad_threshold if conversation.vad_threshold is None
        else conversation.vad_threshold)
    audio = {"data": "", "format": options.audio_format}
    if conversation.reference_audio is not None:
        wav = pcm16_to_wav(conversation.reference_audio, conversation.reference_rate_hz)
        audio = {"data": base64.b64encode(wav).decode("ascii"), "format": "wav"}
    content = [{"type": "input_audio", "input_audio": audio},
               {"type": "options", "options": options.to_upstream()}]
    return {"messages": [{"role": "user", "content": content}]}


def init_options_body(options: UpstreamOptions) -> dict[str, Any]:
    """The ``/init_options`` body of a conversation's options, all five keys (section 5.6)."""
    return minicpm_options(options.conversation, options)


def parse_version(payload: Any) -> str:
    """The upstream version from an ``/init_options`` response (``"2.6"``, ``"4.5"``, ...)."""
    try:
        content = payload["choices"]["content"]
    except (KeyError, TypeError) as exc:
        raise UpstreamProtocolError(f"unexpected /init_options response: {_clip(payload)}") from exc
    return str(content)


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledgement: a ``finish_reason``, or the server's error text."""

    reason: str | None
    error: str | None = None


def parse_ack(text: str | bytes) -> Ack:
    """Read one acknowledgement frame (section 3.3).

    Raises:
        UpstreamProtocolError: not JSON, or neither an ack nor an error object.
    """
    try:
        payload = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UpstreamProtocolError(f"acknowledgement is not JSON: {_clip(text)}") from exc
    if isinstance(payload, dict):
        if isinstance(payload.get("error"), str):
            return Ack(None, payload["error"])
        choices = payload.get("choices")
        if isinstance(choices, dict) and isinstance(choices.get("finish_reason"), str):
            return Ack(choices["finish_reason"])
    raise UpstreamProtocolError(f"unexpected acknowledgement: {_clip(text)}")


def ack_error(text: str) -> UpstreamError:
    """The error an acknowledgement's ``{"error": ...}`` means (section 3.3)."""
    if "uid changed" in text.lower():  # another conversation took the upstream over (5.1)
        return UpstreamError("another conversation took over the upstream (UID changed in stream)")
    return UpstreamProtocolError(f"the upstream rejected an audio message: {text}")


@dataclass(frozen=True, slots=True)
class ReplyMessage:
    """One SSE message of a reply: a text delta and, unless it is the end marker, a WAV."""

    text: str
    audio_b64: str | None
    response_id: int | None


@dataclass(frozen=True, slots=True)
class ReplyError:
    """The server's own error line, ``data:{"error": ...}`` (section 4.3)."""

    message: str


UpstreamEvent = ReplyMessage | ReplyError


def parse_reply_data(data: str) -> UpstreamEvent:
    """Read one SSE ``data`` payload.

    Raises:
        UpstreamProtocolError: not JSON, or not of the message or error shape.
    """
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise UpstreamProtocolError(f"SSE data is not JSON: {_clip(data)}") from exc
    if not isinstance(payload, dict):
        raise UpstreamProtocolError(f"SSE data is not an object: {_clip(data)}")
    if "error" in payload and "choices" not in payload:
        return ReplyError(str(payload["error"]))
    choices = payload.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict):
        raise UpstreamProtocolError(f"SSE message without choices: {_clip(data)}")
    text, audio = choice.get("text", ""), choice.get("audio")
    if not isinstance(text, str) or not (audio is None or isinstance(audio, str)):
        raise UpstreamProtocolError(f"SSE message with a bad text or audio field: {_clip(data)}")
    response_id = payload.get("response_id")
    return ReplyMessage(text, audio or None, response_id if isinstance(response_id, int) else None)


def _clip(value: object, limit: int = 120) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
