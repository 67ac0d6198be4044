"""What the gateway simulator saw and did, for tests to read and await.

Owns: :class:`GatewayRecorder`: every client text frame as it came (so a test can check each
against the protocol's schema), every server event sent (audio replaced by its sample count),
the samples of every append taken, per session, the appends dropped for coming too fast, the
close codes sent, and :meth:`GatewayRecorder.wait_for`, which awaits a condition on the record
(woken on every change, no polling). Must not: decide anything about the protocol.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..watched import Watched

__all__ = ["GatewayRecorder"]


@dataclass(slots=True)
class GatewayRecorder(Watched):
    """Everything the simulated gateway observed, updated in place.

    Attributes:
        frames: every client text frame, as received, in order (all sessions).
        sent: every server event sent, in order, with ``session`` (its id, or the ticket's while
            queued) added and ``audio`` replaced by its number of samples.
        appends: per session id, the samples of each append the model took, in order.
        force_listens: per session id, how many appends asked ``force_listen``.
        dropped: appends dropped because a newer one came before the model was free.
        closes: the close codes the simulator sent, in order.
        sessions: session ids that got ``session.created``, in order.
        ended: session ids whose connection ended.
    """

    frames: list[str] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    appends: defaultdict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    force_listens: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    dropped: int = 0
    closes: list[int] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    def of(self, kind: str, session: str | None = None) -> list[dict[str, Any]]:
        """The server events of type ``kind`` sent (to ``session`` only, when given)."""
        return [e for e in self.sent if e["type"] == kind and (session is None or e["session"] == session)]

    def received(self, kind: str) -> list[dict[str, Any]]:
        """The client events of type ``kind`` received (those that were JSON objects)."""
        events = []
        for frame in self.frames:
            try:
                event = json.loads(frame)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("type") == kind:
                events.append(event)
        return events

    def keep_sent(self, session: str, text: str) -> None:
        event = json.loads(text)
        if isinstance(event.get("audio"), str):
            event["audio"] = len(base64.b64decode(event["audio"])) // 4  # float32 samples
        event["session"] = session
        self.sent.append(event)
        self.changed()
