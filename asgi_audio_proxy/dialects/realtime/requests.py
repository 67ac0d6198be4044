"""What a Realtime client's requests ask for, as far as this model can give it.

Owns: the per-response parameters of a ``response.create`` the proxy honours (``metadata``,
``output_modalities``) and the ones it logs as not honoured, the reasons a response fails when
there is nothing to answer, and the session a ``session.update`` leaves in effect once the
model has heard audio when its upstream takes options only at the start (MiniCPM-o fixes its
prompt, voice and VAD threshold then).
Must not: build events, know ids, or hold state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .wire import RealtimeRequestError

__all__ = ["INPUT_AUDIO_SILENT", "NO_USER_AUDIO", "keep_fixed", "response_params"]

logger = logging.getLogger("asgi_audio_proxy.dialects.realtime")

#: ``response.done``'s failure when no audio came since the last reply (the model answers speech)
NO_USER_AUDIO = ("no_user_audio", "The model behind this server replies to user audio only, and there "
                 "is none to answer: append audio (and commit it when turn_detection is null) first.")
#: its failure when the audio to answer is silence, which the model does not reply to
INPUT_AUDIO_SILENT = ("input_audio_silent", "The audio to answer is silence: the model does not "
                      "reply to it.")
_HONOURED = {"metadata", "output_modalities", "modalities"}


def response_params(event: Mapping[str, Any], event_id: str | None, text_only: bool) -> tuple[Any, bool]:
    """A ``response.create``'s ``metadata`` and whether its reply is text only (``text_only``:
    the session's choice, unless the request names its own modalities).

    Raises:
        RealtimeRequestError: ``metadata`` that is not an object of strings.
    """
    params = event.get("response")
    params = params if isinstance(params, Mapping) else {}
    metadata = params.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict)
                                     and all(isinstance(v, str) for v in metadata.values())):
        raise RealtimeRequestError("Invalid type for 'response.metadata': expected an object of strings.",
                                   param="response.metadata", event_id=event_id)
    ignored = sorted(set(params) - _HONOURED)
    if ignored:
        logger.info("response.create parameters %s are not honoured by this model", ignored)
    modalities = params.get("output_modalities", params.get("modalities"))
    if isinstance(modalities, list) and modalities:
        text_only = "audio" not in modalities
    return metadata, text_only


def keep_fixed(old: Mapping[str, Any], new: dict[str, Any], changed: Mapping[str, Any],
               reason: str = "the upstream takes them at the start only") -> dict[str, Any]:
    """``new`` with the fields an upstream that takes options only at the start kept (instructions,
    voice, VAD threshold) as they are in ``old``, the session in effect; logged with ``reason``."""
    logger.info("options %s asked for after the first audio are not applied: %s", sorted(changed),
                reason)
    new["instructions"] = old["instructions"]
    new["audio"]["output"]["voice"] = old["audio"]["output"]["voice"]
    turn, was = new["audio"]["input"]["turn_detection"], old["audio"]["input"]["turn_detection"]
    if turn is not None and "threshold" in turn:
        turn["threshold"] = (was or {}).get("threshold", turn["threshold"])
    return new
