"""What the simulator's endpoints need of the simulator they serve, as a protocol.

Owns: :class:`SimulatorHost` and the fault modes, so ``http`` and ``ws`` type against this seam
and ``app`` implements it: no module imports the one that imports it. Must not: do I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal, Protocol, get_args

from .model import SimulatorVersion
from .recorder import SimulatorRecorder
from .state import Conversation, OptionsStore

__all__ = ["FAULTS", "Fault", "SimulatorHost"]

Fault = Literal[
    "refuse",
    "die_mid_turn",
    "stall_sse",
    "malformed_sse",
    "malformed_json",
    "error_event",
    "ack_error",
    "ws_close_1011",
    "skip_forever",
]
FAULTS: tuple[Fault, ...] = get_args(Fault)


class SimulatorHost(Protocol):
    """The simulated server's state, as the HTTP routes and the audio WebSocket see it."""

    version: SimulatorVersion
    first_chunk_delay_s: float
    chunk_delay_s: float
    fault: Fault | None
    multi_conversation: bool
    clock: Callable[[], float]
    recorder: SimulatorRecorder
    options: OptionsStore

    def conversation_for(self, uid: str) -> Conversation: ...
    def turn_event(self, conversation: Conversation) -> asyncio.Event: ...
    def synced(self, conversation: Conversation) -> None: ...
    def record_accepted(self, uid: str, conversation: Conversation) -> None: ...
    def die(self, conversation: Conversation) -> None: ...
