"""What the simulated duplex server got and did, for tests to read and await.

Owns: :class:`DuplexRecorder`, a plain record (audio appended per session, every client event
with its audio replaced by its length, playback acks, interruptions, sessions opened, refused,
resumed, expired and closed, the most held at once) and :meth:`DuplexRecorder.wait_for`, woken on
every change (no polling). Must not: decide anything about the protocol.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..watched import Watched

__all__ = ["DuplexRecorder"]


@dataclass(slots=True)
class DuplexRecorder(Watched):
    """Everything the simulated server observed, updated in place.

    Attributes:
        audio: PCM16 appended, per session id.
        received: ``(session_id, event)`` for every client event after the handshake, audio as
            its length in base64 characters.
        acks: every ``playback.ack`` (the event as sent).
        interruptions: ``(session_id, type)`` of each ``response.cancel``, ``barge_in``...
        opened, closed, expired, resumed: session ids, in order.
        refused: handshakes refused for capacity (``resource_exhausted``).
        live, most_live: sessions held now (attached or in their disconnect grace), and the most
            ever held at once.
        drops: sockets the server dropped on purpose (a fault).
    """

    audio: defaultdict[str, bytearray] = field(default_factory=lambda: defaultdict(bytearray))
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    interruptions: list[tuple[str, str]] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    refused: int = 0
    live: int = 0
    most_live: int = 0
    drops: int = 0

    def types(self, session_id: str | None = None) -> list[str]:
        """The client events' types, of one session or all."""
        return [e["type"] for sid, e in self.received if session_id in (None, sid)]

    def held(self, delta: int) -> None:
        self.live += delta
        self.most_live = max(self.most_live, self.live)
        self.changed()
