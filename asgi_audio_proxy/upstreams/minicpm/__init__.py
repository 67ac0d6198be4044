"""The MiniCPM-o web-demo model server: its wire format, its reply translation and the adapter.
"""

from __future__ import annotations

from .adapter import BodyClosed, MiniCPMUpstream, Upstream, UpstreamItem, new_http_client
from .replies import ClientMessage, ReplyRouter, ReplyState, client_event, error_message
from .wire import (
    COMPLETIONS_BODY,
    Ack,
    ReplyError,
    ReplyMessage,
    UpstreamEvent,
    ack_error,
    audio_message,
    init_options_body,
    make_uid,
    parse_ack,
    parse_reply_data,
    parse_version,
)

__all__ = [
    "COMPLETIONS_BODY",
    "Ack",
    "BodyClosed",
    "ClientMessage",
    "MiniCPMUpstream",
    "ReplyError",
    "ReplyMessage",
    "ReplyRouter",
    "ReplyState",
    "Upstream",
    "UpstreamEvent",
    "UpstreamItem",
    "ack_error",
    "audio_message",
    "client_event",
    "error_message",
    "init_options_body",
    "make_uid",
    "new_http_client",
    "parse_ack",
    "parse_reply_data",
    "parse_version",
]
