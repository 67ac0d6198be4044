"""One conversation: the session's tasks, the way to the client (channel and outbox), pacing and
the audio ledger.
"""

from __future__ import annotations

from .admit import ParameterCheck, admit_parameters
from .channel import ClientChannel, EventObserver
from .outbox import Outbox
from .rates import RateBridge
from .session import ProxySession, SessionState
from .stats import AudioLedger, SessionLog, SessionStats
from .voice import VoiceWatch
from .watch import watch_session

__all__ = [
    "AudioLedger",
    "ClientChannel",
    "EventObserver",
    "Outbox",
    "ParameterCheck",
    "ProxySession",
    "RateBridge",
    "SessionLog",
    "SessionState",
    "SessionStats",
    "VoiceWatch",
    "admit_parameters",
    "watch_session",
]
