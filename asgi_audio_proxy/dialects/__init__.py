"""Client dialects: the seam (:mod:`.base`), the client's connection as the core sees it
(:mod:`.connection`), and the wire formats clients speak.
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

__all__ = [
    "ClientConnection",
    "ClientDialect",
    "ConfigControl",
    "Control",
    "DialectFactory",
    "Frame",
    "NativeDialect",
    "StopControl",
    "native_dialect",
    "parse_control",
]
