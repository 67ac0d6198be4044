"""Client dialects: the seam (:mod:`.base`) and the wire formats clients speak.
"""

from __future__ import annotations

from .base import ClientDialect, DialectFactory, Frame
from .native import (
    ConfigControl,
    Control,
    NativeDialect,
    StopControl,
    native_dialect,
    parse_control,
)

__all__ = [
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
