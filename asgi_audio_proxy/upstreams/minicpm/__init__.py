"""The MiniCPM-o web-demo model server: its wire format, its reply translation and the adapter.
"""

from __future__ import annotations

from .adapter import COMMIT_SILENCE_S, MiniCPMAdapter, minicpm_adapter, minicpm_upstream
from .kind import MINICPM, minicpm_kind
from .replies import ReplyRouter, ReplyStats
from .settings import MiniCPMSettings
from .transport import BodyClosed, MiniCPMTransport, Transport, TransportItem
from .wire import (
    COMPLETIONS_BODY,
    Ack,
    AudioMessages,
    ReplyError,
    ReplyMessage,
    UpstreamEvent,
    ack_error,
    audio_message,
    init_options_body,
    make_uid,
    minicpm_options,
    parse_ack,
    parse_reply_data,
    parse_version,
)

__all__ = [
    "COMMIT_SILENCE_S",
    "COMPLETIONS_BODY",
    "MINICPM",
    "Ack",
    "AudioMessages",
    "BodyClosed",
    "MiniCPMAdapter",
    "MiniCPMSettings",
    "MiniCPMTransport",
    "ReplyError",
    "ReplyMessage",
    "ReplyRouter",
    "ReplyStats",
    "Transport",
    "TransportItem",
    "UpstreamEvent",
    "ack_error",
    "audio_message",
    "init_options_body",
    "make_uid",
    "minicpm_adapter",
    "minicpm_kind",
    "minicpm_options",
    "minicpm_upstream",
    "parse_ack",
    "parse_reply_data",
    "parse_version",
]
