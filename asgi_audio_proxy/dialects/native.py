"""The client's control messages (JSON text frames), parsed once into typed values.

Owns: ``{"type": "stop"}`` and ``{"type": "config", ...}``, the size check, and the
``BadClientPayload`` every other text frame gets. Must not: act on a control (the session does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import BadClientPayload

__all__ = ["ConfigControl", "Control", "StopControl", "parse_control"]


@dataclass(frozen=True, slots=True)
class StopControl:
    """Stop the reply being played."""


@dataclass(frozen=True, slots=True)
class ConfigControl:
    """Conversation options (camelCase keys), before the first audio."""

    config_data: dict[str, Any]


Control = StopControl | ConfigControl


def parse_control(text: str, max_chars: int) -> Control:
    """Read one control message.

    Raises:
        BadClientPayload: too long, not JSON, not an object with a string ``type``, or a type
            other than ``stop`` and ``config``.
    """
    if len(text) > max_chars:
        raise BadClientPayload(f"text frame of {len(text)} characters is over {max_chars}")
    try:
        control = json.loads(text)
    except ValueError as exc:
        raise BadClientPayload(f"text frame is not JSON: {exc}") from exc
    if not isinstance(control, dict) or not isinstance(control.get("type"), str):
        raise BadClientPayload('a control message is a JSON object with a string "type"')
    kind = control.pop("type")
    if kind == "stop":
        return StopControl()
    if kind == "config":
        return ConfigControl(control)
    raise BadClientPayload(f"unknown control type {kind!r}; expected 'stop' or 'config'")
