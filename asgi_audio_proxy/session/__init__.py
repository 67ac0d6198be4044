"""One conversation: the session's tasks, the way to the client (channel and outbox), pacing and
the audio ledger.
"""

from __future__ import annotations

from .channel import ClientChannel, EventObserver
from .outbox import Outbox
from .session import ProxySession, SessionState
from .stats import AudioLedger, SessionLog, SessionStats

__all__ = [
    "AudioLedger",
    "ClientChannel",
    "EventObserver",
    "Outbox",
    "ProxySession",
    "SessionLog",
    "SessionState",
    "SessionStats",
]
