"""Client dialects: the seam (:mod:`.base`), the client's connection as the core sees it
(:mod:`.connection`), and the wire formats clients speak; the native one's client half too
(:mod:`.native_client`, its messages in :mod:`.native_messages`).
"""

from __future__ import annotations

from .base import ClientDialect, DialectFactory, Frame
from .connection import ClientConnection
from .native import (
    ConfigControl,
    Control,
    NativeDialect,
    StopControl,
    native_dialect,
    parse_control,
)
from .native_client import FinishedReply, NativeClient, decode_message, encode_control
from .native_messages import (
    AudioMessage,
    BadProxyMessage,
    ConfigAppliedMessage,
    ErrorMessage,
    ProxyMessage,
    QueuedMessage,
    ReadyMessage,
    SpeechStartedMessage,
    SpeechStoppedMessage,
    TextMessage,
    TurnEndMessage,
    UnknownProxyMessage,
)

__all__ = [
    "AudioMessage",
    "BadProxyMessage",
    "ClientConnection",
    "ClientDialect",
    "ConfigAppliedMessage",
    "ConfigControl",
    "Control",
    "DialectFactory",
    "ErrorMessage",
    "FinishedReply",
    "Frame",
    "NativeClient",
    "NativeDialect",
    "ProxyMessage",
    "QueuedMessage",
    "ReadyMessage",
    "SpeechStartedMessage",
    "SpeechStoppedMessage",
    "StopControl",
    "TextMessage",
    "TurnEndMessage",
    "UnknownProxyMessage",
    "decode_message",
    "encode_control",
    "native_dialect",
    "parse_control",
]
