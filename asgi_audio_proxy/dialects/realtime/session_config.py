"""The effective Realtime session: defaults, ``session.update`` deep merge, GA and beta shapes.

Owns: the session object a client sees in ``session.created`` / ``session.updated``, kept in
the GA shape and rendered flat for beta clients; the deep merge of a partial update (unknown
fields ignored, an explicit ``null`` kept: ``turn_detection: null`` means manual turns); the
validation the real API does on the fields this proxy acts on; and what the session asks for
as neutral :class:`~asgi_audio_proxy.config.ConversationOptions` (``instructions``, the voice by
name, ``turn_detection.threshold``), which the library's option names follow from. Must not:
build events or know ids.

Fields the model cannot honour are accepted and shown as what is in effect: ``tools`` stays
``[]``, ``transcription``, ``noise_reduction``, ``prompt`` and ``include`` stay ``null``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from ...config import ConversationOptions, ProxyConfig
from .wire import Protocol, RealtimeRequestError

__all__ = [
    "FORMAT_RATES_HZ",
    "audio_format",
    "beta_format",
    "conversation_options",
    "initial_session",
    "is_manual",
    "is_text_only",
    "library_options",
    "merge_update",
    "render",
]

#: the sample rate of each format the proxy takes and gives (the real API's three)
FORMAT_RATES_HZ = {"audio/pcm": 24_000, "audio/pcmu": 8_000, "audio/pcma": 8_000}
_BETA_FORMATS = {"pcm16": "audio/pcm", "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
_GA_FORMATS = {ga: beta for beta, ga in _BETA_FORMATS.items()}
#: what each kind of turn detection may carry; fields of the other kind are dropped
_TURN_FIELDS = {
    "server_vad": {"type", "threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms",
                   "create_response", "interrupt_response"},
    "semantic_vad": {"type", "eagerness", "create_response", "interrupt_response"},
}
#: fields kept as the client set them (echoed, not acted on)
_ECHOED = ("model", "tool_choice", "max_output_tokens", "tracing", "truncation")
#: ``vadThreshold`` must lie strictly inside (0, 1)
_THRESHOLD_RANGE = (0.01, 0.99)


def initial_session(config: ProxyConfig, *, session_id: str, model: str) -> dict[str, Any]:
    """The session before any update: the proxy's own options in Realtime terms (GA shape)."""
    pcm = {"type": "audio/pcm", "rate": 24_000}
    own = config.options.conversation
    return {
        "type": "realtime", "object": "realtime.session", "id": session_id, "model": model,
        "output_modalities": ["audio"], "instructions": own.instructions,
        "tools": [], "tool_choice": "auto", "max_output_tokens": "inf", "tracing": None,
        "truncation": "auto", "prompt": None, "include": None,
        "audio": {
            "input": {"format": dict(pcm), "transcription": None, "noise_reduction": None,
                      "turn_detection": _turn_defaults("server_vad", own.vad_threshold)},
            "output": {"format": dict(pcm), "speed": 1.0, "voice": own.voice or "default"},
        },
    }


def merge_update(current: Mapping[str, Any], update: object, protocol: Protocol,
                 event_id: str | None = None) -> dict[str, Any]:
    """The session after ``update`` (a ``session.update``'s ``session``), deep-merged.

    Raises:
        RealtimeRequestError: not an object, a GA ``type`` other than ``realtime``, or a bad
            value of a field the proxy acts on; the session is then left as it was.
    """
    def bad(message: str, param: str, code: str = "invalid_value") -> RealtimeRequestError:
        return RealtimeRequestError(message, code=code, param=param, event_id=event_id)

    if not isinstance(update, Mapping):
        raise bad("Invalid type for 'session': expected an object.", "session", "invalid_type")
    if protocol == "beta":
        update = _beta_to_ga(update)
    elif update.get("type", "realtime") != "realtime":
        raise bad(f"Invalid value: '{update.get('type')}'. This server supports only 'realtime' "
                  "sessions.", "session.type")
    session = copy.deepcopy(dict(current))
    for key in _ECHOED:
        if key in update:
            session[key] = copy.deepcopy(update[key])
    if "instructions" in update:
        if not isinstance(update["instructions"], str):
            raise bad("Invalid type for 'session.instructions': expected a string.",
                      "session.instructions", "invalid_type")
        session["instructions"] = update["instructions"]
    if "output_modalities" in update:
        session["output_modalities"] = _modalities(update["output_modalities"], bad)
    audio = update.get("audio")
    if isinstance(audio, Mapping):
        _merge_audio(session["audio"], audio, bad)
    return session


def _merge_audio(audio: dict[str, Any], update: Mapping[str, Any], bad: Any) -> None:
    for side in ("input", "output"):
        part = update.get(side)
        if not isinstance(part, Mapping):
            continue
        if "format" in part:
            audio[side]["format"] = _format(part["format"], f"session.audio.{side}.format", bad)
    inp, out = update.get("input"), update.get("output")
    if isinstance(inp, Mapping) and "turn_detection" in inp:
        audio["input"]["turn_detection"] = _turn_detection(
            audio["input"]["turn_detection"], inp["turn_detection"], bad)
    if isinstance(out, Mapping):
        if "voice" in out:
            voice = out["voice"]
            named = isinstance(voice, Mapping) and isinstance(voice.get("id"), str)
            if not (isinstance(voice, str) or named):
                raise bad("Invalid type for 'session.audio.output.voice': expected a string.",
                          "session.audio.output.voice", "invalid_type")
            audio["output"]["voice"] = copy.deepcopy(voice)
        if isinstance(out.get("speed"), int | float) and not isinstance(out.get("speed"), bool):
            audio["output"]["speed"] = out["speed"]


def _modalities(value: object, bad: Any) -> list[str]:
    if (not isinstance(value, list) or not value
            or not all(m in ("text", "audio") for m in value)):
        raise bad("Invalid value for 'session.output_modalities': expected ['audio'] or ['text'].",
                  "session.output_modalities")
    return ["audio"] if "audio" in value else ["text"]


def _format(value: object, param: str, bad: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or value.get("type") not in FORMAT_RATES_HZ:
        kind = value.get("type") if isinstance(value, Mapping) else value
        raise bad(f"Invalid value: '{kind}'. Supported values are: 'audio/pcm', 'audio/pcmu' and "
                  "'audio/pcma'.", param + ".type")
    if value["type"] == "audio/pcm":
        rate = value.get("rate", 24_000)
        if rate != 24_000:
            raise bad(f"Invalid value: {rate!r}. audio/pcm is 24000 Hz only.", param + ".rate")
        return {"type": "audio/pcm", "rate": 24_000}
    return {"type": value["type"]}


def _turn_detection(current: Mapping[str, Any] | None, update: object, bad: Any) -> dict[str, Any] | None:
    param = "session.audio.input.turn_detection"
    if update is None:
        return None
    if not isinstance(update, Mapping):
        raise bad(f"Invalid type for '{param}': expected an object or null.", param, "invalid_type")
    kind = update.get("type", current["type"] if current else "server_vad")
    if kind not in _TURN_FIELDS:
        raise bad(f"Invalid value: '{kind}'. Supported values are: 'server_vad' and 'semantic_vad'.",
                  param + ".type")
    base = dict(current) if current and current.get("type") == kind else _turn_defaults(kind, None)
    base.update({key: copy.deepcopy(value) for key, value in update.items() if key in _TURN_FIELDS[kind]})
    threshold = base.get("threshold")
    if kind == "server_vad" and not (_is_number(threshold) and 0 <= threshold <= 1):
        raise bad(f"Invalid value: {threshold!r}. Expected a number between 0 and 1.", param + ".threshold")
    if kind == "semantic_vad" and base.get("eagerness") not in ("low", "medium", "high", "auto"):
        raise bad(f"Invalid value: {base.get('eagerness')!r}. Supported values are: 'low', 'medium', "
                  "'high' and 'auto'.", param + ".eagerness")
    return base


def _turn_defaults(kind: str, threshold: float | None) -> dict[str, Any]:
    if kind == "semantic_vad":
        return {"type": kind, "eagerness": "auto", "create_response": True, "interrupt_response": True}
    return {"type": kind, "threshold": 0.5 if threshold is None else threshold, "prefix_padding_ms": 300,
            "silence_duration_ms": 500, "idle_timeout_ms": None, "create_response": True,
            "interrupt_response": True}


def _beta_to_ga(update: Mapping[str, Any]) -> dict[str, Any]:
    """A flat beta ``session`` as the GA fields it stands for (unknown fields dropped)."""
    ga: dict[str, Any] = {key: update[key] for key in ("instructions", "tool_choice", "tracing",
                                                       "model") if key in update}
    if "modalities" in update:
        ga["output_modalities"] = update["modalities"]
    if "max_response_output_tokens" in update:
        ga["max_output_tokens"] = update["max_response_output_tokens"]
    inp: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for flat, side, key in (("input_audio_format", inp, "format"), ("output_audio_format", out, "format")):
        if flat in update:
            value = update[flat]
            side[key] = {"type": _BETA_FORMATS.get(value, value) if isinstance(value, str) else value}
    if "turn_detection" in update:
        inp["turn_detection"] = update["turn_detection"]
    for key in ("voice", "speed"):
        if key in update:
            out[key] = update[key]
    ga["audio"] = {"input": inp, "output": out}
    return ga


def render(session: Mapping[str, Any], protocol: Protocol) -> dict[str, Any]:
    """The session object of ``session.created`` / ``session.updated`` in ``protocol``'s shape."""
    if protocol == "ga":
        return copy.deepcopy(dict(session))
    audio_in, audio_out = session["audio"]["input"], session["audio"]["output"]
    voice = audio_out["voice"]
    # the beta type lists model names as literals: a self-hosted model's name would not validate
    return {
        "id": session["id"], "object": "realtime.session",
        "modalities": ["text", "audio"] if "audio" in session["output_modalities"] else ["text"],
        "instructions": session["instructions"],
        "voice": voice if isinstance(voice, str) else voice["id"],
        "input_audio_format": _GA_FORMATS[audio_in["format"]["type"]],
        "output_audio_format": _GA_FORMATS[audio_out["format"]["type"]],
        "input_audio_transcription": None, "input_audio_noise_reduction": None,
        "turn_detection": copy.deepcopy(audio_in["turn_detection"]),
        "tools": [], "tool_choice": session["tool_choice"], "temperature": 0.8,
        "max_response_output_tokens": session["max_output_tokens"], "speed": audio_out["speed"],
        "tracing": session["tracing"],
    }


def audio_format(session: Mapping[str, Any], side: str) -> str:
    """``audio/pcm``, ``audio/pcmu`` or ``audio/pcma`` for ``side`` (``input``/``output``)."""
    return str(session["audio"][side]["format"]["type"])


def is_manual(session: Mapping[str, Any]) -> bool:
    """``turn_detection: null``: the client commits each turn itself."""
    return session["audio"]["input"]["turn_detection"] is None


def interrupts_on_speech(session: Mapping[str, Any]) -> bool:
    """Turn detection with ``interrupt_response`` (on unless set false): speech that starts over
    a reply cancels it, as OpenAI's server does."""
    turn = session["audio"]["input"]["turn_detection"]
    return turn is not None and turn.get("interrupt_response", True) is not False


def is_text_only(session: Mapping[str, Any]) -> bool:
    """``output_modalities: ['text']``: replies go out as text, their audio is not sent."""
    return "audio" not in session["output_modalities"]


def conversation_options(session: Mapping[str, Any]) -> ConversationOptions:
    """What ``session`` asks of the model, in no kind's words: its instructions, its voice by
    name (a ``{"id": ...}`` voice by its id) and its VAD threshold (kept inside (0, 1))."""
    turn = session["audio"]["input"]["turn_detection"]
    threshold = None
    if turn is not None and _is_number(turn.get("threshold")):
        low, high = _THRESHOLD_RANGE
        threshold = min(max(float(turn["threshold"]), low), high)
    voice = session["audio"]["output"]["voice"]
    name = voice if isinstance(voice, str) else voice.get("id")
    return ConversationOptions(instructions=session["instructions"],
                               voice=name if isinstance(name, str) and name.strip() else None,
                               vad_threshold=threshold)


def library_options(session: Mapping[str, Any]) -> dict[str, Any]:
    """The library's options (the native protocol's names) that ``session`` stands for: its
    :func:`conversation_options` as far as those names reach (a voice only if it is a preset)."""
    return conversation_options(session).native_keys()


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def beta_format(ga_format: str) -> str:
    """The beta name of a GA audio format (``audio/pcm`` → ``pcm16``)."""
    return _GA_FORMATS[ga_format]
