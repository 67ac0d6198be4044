"""The simulated server's live duplex sessions: slots, attachments, the journal, resume and grace.

Owns: :class:`HostedSession` (a conversation, its resume token and attachment generation, its
``server_event_seq`` counter and replay journal, the socket it is attached to) and
:class:`SessionTable` (at most ``max_sessions`` of them, attached or in their disconnect grace;
what a resume is answered with). As ``vllm_omni/entrypoints/duplex/session_attachment.py`` and
``serving.py`` do: every session event is stamped and journaled; ``session.event_ack`` trims the
journal; a dropped socket leaves the session (and its slot) held for ``disconnect_grace_s``; a
``session.resume`` with the current token re-attaches it, rotates the token, answers
``session.resumed`` and replays what the journal holds past ``last_received_server_event_seq``.
Must not: read sockets (``app.py`` does) or decide what the model says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asgi_audio_proxy.simulator.vllm_duplex.conversation import DuplexConversation
from asgi_audio_proxy.simulator.vllm_duplex.recorder import DuplexRecorder
from asgi_audio_proxy.simulator.vllm_duplex.wire import error, event

__all__ = ["HostedSession", "SessionTable", "Socket"]

#: events journaled per session at most; older ones fall off (a resume behind them must resync)
JOURNAL_MAX_EVENTS = 4_096


@dataclass(slots=True)
class Socket:
    """An attached connection as the table sees it: send a text frame, close with a code."""

    send: Callable[[str], Awaitable[None]]
    close: Callable[[int], Awaitable[None]]


@dataclass(slots=True)
class HostedSession:
    conversation: DuplexConversation
    resume_token: str
    generation: int = 1
    seq: int = 0
    journal: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=JOURNAL_MAX_EVENTS))
    socket: Socket | None = None
    grace: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def session_id(self) -> str:
        return self.conversation.session_id


def _token() -> str:
    return "rt_" + secrets.token_hex(16)


class SessionTable:
    """The server's sessions, bounded by ``max_sessions``."""

    def __init__(self, recorder: DuplexRecorder, *, max_sessions: int, disconnect_grace_s: float,
                 reply_units: int | None) -> None:
        self.recorder = recorder
        self.max_sessions = max_sessions
        self.disconnect_grace_s = disconnect_grace_s
        self.reply_units = reply_units
        #: fault: drop the socket instead of sending the next event of this type (it is journaled)
        self.drop_at: str | None = None
        self.sessions: dict[str, HostedSession] = {}

    def open(self, config: dict[str, Any], socket: Socket) -> HostedSession | dict[str, Any]:
        """A new session for ``config``, attached to ``socket``; or the error that refuses it."""
        if len(self.sessions) >= self.max_sessions:  # admission comes before the model's checks
            self.recorder.refused += 1
            self.recorder.changed()
            return error("resource_exhausted",
                         f"duplex_session_capacity_exhausted: limit={self.max_sessions}")
        modalities = config.get("modalities") or ["audio", "text"]
        if "audio" in modalities and not config.get("ref_audio"):
            return error("ref_audio_required", "MiniCPM-o native duplex audio output requires ref_audio")
        session_id = f"duplex-{uuid.uuid4()}"
        conversation = DuplexConversation(session_id, dict(config), reply_units=self.reply_units)
        hosted = HostedSession(conversation, _token(), socket=socket)
        self.sessions[session_id] = hosted
        self.recorder.opened.append(session_id)
        self.recorder.held(+1)
        return hosted

    async def emit(self, hosted: HostedSession, events: list[dict[str, Any]]) -> None:
        """Stamp, journal and send ``events`` in order (to nobody while detached)."""
        async with hosted.lock:
            for item in events:
                hosted.seq += 1
                item["server_event_seq"] = hosted.seq
                text = json.dumps(item)
                hosted.journal.append((hosted.seq, text))
                if self.drop_at is not None and item["type"] == self.drop_at and hosted.socket:
                    self.drop_at = None
                    await self.drop(hosted)
                if hosted.socket is not None:
                    await self._send(hosted, hosted.socket, text)

    async def _send(self, hosted: HostedSession, socket: Socket, text: str) -> None:
        try:
            await socket.send(text)
        except (OSError, RuntimeError):  # the socket died mid-send: a disconnect, not an end
            self.detach(hosted, socket)

    def acknowledge(self, hosted: HostedSession, seq: object) -> dict[str, Any] | None:
        """``session.event_ack``: forget what the client has; an error for a bad sequence."""
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or seq > hosted.seq:
            return error("invalid_event_ack", "session.event_ack requires a server_event_seq "
                         "the server has sent")
        while hosted.journal and hosted.journal[0][0] <= seq:
            hosted.journal.popleft()
        return None

    def detach(self, hosted: HostedSession, socket: Socket) -> None:
        """``socket`` is gone: the session waits ``disconnect_grace_s`` for a resume."""
        if hosted.socket is not socket or hosted.session_id not in self.sessions:
            return
        hosted.socket = None
        hosted.grace = asyncio.get_running_loop().call_later(
            self.disconnect_grace_s, self.forget, hosted.session_id, "disconnect_grace_expired")

    def forget(self, session_id: str, reason: str) -> None:
        """End a session without a word to its client (its grace ran out, or a fault)."""
        hosted = self.sessions.pop(session_id, None)
        if hosted is None:
            return
        if hosted.grace is not None:
            hosted.grace.cancel()
        self.recorder.expired.append(session_id)
        self.recorder.held(-1)

    async def close(self, hosted: HostedSession, reason: str) -> None:
        """``session.close``: answer ``session.closed``, free the slot, close the socket (1000)."""
        await self.emit(hosted, [event("session.closed", session_id=hosted.session_id, reason=reason,
                                       event={"type": "session.closed", "reason": reason})])
        if self.sessions.pop(hosted.session_id, None) is not None:
            self.recorder.closed.append(hosted.session_id)
            self.recorder.held(-1)
        socket, hosted.socket = hosted.socket, None
        if socket is not None:
            await socket.close(1000)

    async def expire(self, session_id: str, reason: str = "idle_ttl_expired") -> None:
        """The engine reaps a session: ``session.expired`` to its socket, which then closes."""
        hosted = self.sessions.get(session_id)
        if hosted is None:
            return
        await self.emit(hosted, [event("session.expired", session_id=session_id, reason=reason)])
        socket, hosted.socket = hosted.socket, None
        self.forget(session_id, reason)
        if socket is not None:
            await socket.close(1000)

    async def drop(self, hosted: HostedSession) -> None:
        """Fault: the server drops the socket (as a network cut would); the session stays."""
        socket = hosted.socket
        if socket is None:
            return
        self.detach(hosted, socket)
        self.recorder.drops += 1
        self.recorder.changed()
        await socket.close(1012)

    async def resume(self, request: dict[str, Any], socket: Socket) -> HostedSession | None:
        """Answer a ``session.resume`` on ``socket``: ``session.resumed`` plus the replay, and the
        session re-attached; or an error (or ``session.resync_required``) and ``None``."""
        session_id, token = request.get("session_id"), request.get("resume_token")
        last = request.get("last_received_server_event_seq", 0)
        if not (isinstance(session_id, str) and session_id and isinstance(token, str) and token
                and isinstance(last, int) and not isinstance(last, bool) and last >= 0):
            await socket.send(json.dumps(error(
                "invalid_session_resume",
                "session.resume requires session_id, resume_token, and a non-negative event sequence")))
            return None
        hosted = self.sessions.get(session_id)
        if hosted is None:
            await socket.send(json.dumps(error("session_resume_expired",
                                               f"Unknown or expired duplex session: {session_id}")))
            return None
        if not secrets.compare_digest(token, hosted.resume_token):
            await socket.send(json.dumps(error("invalid_resume_token",
                                               "Invalid duplex session resume token")))
            return None
        if hosted.journal and last < hosted.journal[0][0] - 1:
            await socket.send(json.dumps(event("session.resync_required", session_id=session_id,
                                               reason="journal_gap")))
            return None
        async with hosted.lock:
            old, hosted.socket = hosted.socket, socket
            if hosted.grace is not None:
                hosted.grace.cancel()
                hosted.grace = None
            if old is not None:
                await _quietly(old.send(json.dumps(event("session.replaced", session_id=session_id,
                                                         attachment_generation=hosted.generation))))
                await _quietly(old.close(1000))
            hosted.generation += 1
            hosted.resume_token = _token()
            await socket.send(json.dumps(event(
                "session.resumed", session_id=session_id, incarnation=0,
                attachment_generation=hosted.generation, resume_token=hosted.resume_token,
                session=hosted.conversation.session())))
            for seq, text in list(hosted.journal):
                if seq > last:
                    await socket.send(text)
        self.recorder.resumed.append(session_id)
        self.recorder.changed()
        return hosted


async def _quietly(step: Awaitable[None]) -> None:
    with contextlib.suppress(OSError, RuntimeError):  # the socket being replaced may be gone already
        await step
