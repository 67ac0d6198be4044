"""``ResumableClient``: a session's client connection that outlives a dropped network.

Owns: the connection of the moment (read by the session's own receiving task, which a resume
interrupts when the old connection has not noticed its cut yet), the time away (silence at
real time in place of the client's audio, so the upstream's turn logic goes on; what was meant
for the client kept in a :class:`~.resume.ReplyBuffer`), the end of the grace, and taking a
resumed connection in (the dialect's ``resumed`` first; where the dialect numbers its events,
what was sent after the last one the client read, from a :class:`~.resume.SentWindow`; then
what was kept). A close frame from the client ends the session at once; a cut (no close
frame) leaves it held for ``grace_s``.
Must not: parse a frame, or decide anything of the conversation's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol, runtime_checkable

from starlette import status

from ..dialects.base import Frame
from ..dialects.connection import ClientConnection
from ..errors import ClientGone
from .resume import MAX_AWAY_AUDIO_S, ReplyBuffer, ResumeTokens, SentWindow, resumable

__all__ = ["ResumableClient", "ResumeWire"]

logger = logging.getLogger("asgi_audio_proxy.session")

#: silence goes upstream in frames of this length while the client is away
_SILENCE_FRAME_S = 0.02


@runtime_checkable
class ResumeWire(Protocol):
    """What a dialect that supports resuming says: the ``resumed`` event, a refusal (an
    ``error`` of kind ``resume_failed``, before close 1008), and silence."""

    text_audio_ratio: float
    #: whether each frame it sends carries an id a client may name on its resume (below)
    numbers_events: bool

    @property
    def output_rate_hz(self) -> int: ...

    def resumed(self, session_id: str, token: str) -> list[Frame]: ...

    def resume_failed(self, message: str) -> list[Frame]: ...

    def is_event(self, frame: Frame, event_id: str) -> bool: ...

    def silence(self, duration_s: float) -> Frame: ...


class ResumableClient:
    """A :class:`ClientConnection` whose carrier may be cut and replaced within ``grace_s``.

    Args:
        first: the connection the session opened on.
        tokens: the process's resume tokens.
        wire: the dialect's resume words.
        origin, identity: who opened it (a resume must come from the same).
        grace_s: how long a cut connection's session is held.
    """

    def __init__(self, first: ClientConnection, tokens: ResumeTokens[ResumableClient],
                 wire: ResumeWire, *, origin: str | None, identity: object, grace_s: float) -> None:
        self._conn: ClientConnection | None = first
        self._tokens = tokens
        self._wire = wire
        self._origin = origin
        self._identity = identity
        self.grace_s = grace_s
        self.session_id = ""
        self._token: str | None = None  # issued once the session is ready
        self._generation = 0
        self._receiver: asyncio.Task[object] | None = None  # the task reading ``_conn`` now
        self._replaced = False  # ``_receiver`` was cancelled because its connection was replaced
        self._attached = asyncio.Event()  # set when a resumed connection is taken
        self._failed: ClientConnection | None = None  # a send to it failed
        self._released = asyncio.Event()  # the connection of the moment is no longer used
        self._send_lock = asyncio.Lock()
        max_audio = int(MAX_AWAY_AUDIO_S * wire.output_rate_hz * 2)
        self._buffer = ReplyBuffer(max_audio, wire.text_audio_ratio)
        self._sent = SentWindow(max_audio, wire.text_audio_ratio) if wire.numbers_events else None
        self._deadline = self._next_silence = 0.0
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()
        self.resumes = 0
        self.expired = False
        self.away_silence_s = 0.0

    @property
    def away(self) -> bool:
        return self._conn is None

    @property
    def dropped_reply_bytes(self) -> int:
        return self._buffer.dropped_bytes

    def issue(self, session_id: str) -> str:
        """The session is ready: its first resume token."""
        self.session_id = session_id
        self._token = self._tokens.issue(self, self._origin, self._identity)
        return self._token

    async def accept(self, subprotocol: str | None = None) -> None:
        self._subprotocol = subprotocol
        assert self._conn is not None
        await self._conn.accept(subprotocol)

    async def receive(self) -> bytes | str:
        task = asyncio.current_task()
        while True:
            conn = self._conn
            if conn is None:
                frame = await self._while_away()
                if frame is not None:
                    return frame
                continue  # resumed: read the new connection
            generation = self._generation
            self._receiver = task  # read in this task: no hop through another per frame
            try:
                return await conn.receive()
            except ClientGone as exc:
                if generation == self._generation:  # not a connection replaced meanwhile
                    self._lose(exc.code)
            except asyncio.CancelledError:
                # a resume took the place of the connection read (its cut not yet noticed)
                if not self._replaced or task is None:
                    raise
                self._replaced = False
                if task.uncancel() > 0:  # cancelled for another reason as well
                    raise
            finally:
                self._receiver = None

    async def send(self, message: bytes | str) -> None:
        async with self._send_lock:
            conn = self._conn
            if conn is not None and conn is not self._failed:
                try:
                    await conn.send(message)
                    if self._sent is not None:
                        self._sent.add(message)
                    return
                except ClientGone:
                    if self._token is None or self._closing:
                        raise
                    # how it ended (a close, or a cut) is for its receive to tell: until then,
                    # what goes to it is kept as for a client away
                    self._failed = conn
            if self._token is None or self._closing:
                raise ClientGone(None)
            self._buffer.add(message)

    async def close(self, code: int, reason: str = "") -> None:
        self.end()
        conn = self._conn
        if conn is not None:
            try:
                await conn.close(code, reason)
            finally:
                self.release()

    def end(self) -> None:
        """The session is ending: its token stops working, and no connection is taken any more."""
        self._closing = True
        self._tokens.withdraw(self)

    def release(self) -> None:
        """The session is over: the connection of the moment is no longer its (its handler may
        return)."""
        self.end()
        self._conn = None
        self._released.set()

    async def attach(self, conn: ClientConnection, last_event_id: str | None = None) -> None:
        """Take ``conn`` (a resume, already checked) as the session's connection: ``resumed``
        with the next token, then what was sent after ``last_event_id`` (the last event the
        client read, where its dialect numbers events: a cut loses what was in flight), then
        what was kept while away; returns once ``conn`` is no longer the session's (the
        session ended, or it was cut or replaced in turn).

        Raises:
            ClientGone: the session ended meanwhile, or ``conn`` was cut before it was taken.
        """
        await conn.accept(self._subprotocol)
        async with self._send_lock:
            if self._closing:
                raise ClientGone(None)
            old, self._conn = self._conn, None
            if old is not None:  # the old connection has not noticed its cut yet: replace it
                if self._receiver is not None:  # stop reading it
                    self._replaced = True
                    self._receiver.cancel()
                self._released.set()
                self._close_later(old)
                self._go_away()  # until the new one is in (or the grace ends, should it fail)
            self._token = self._tokens.issue(self, self._origin, self._identity)
            for frame in [*self._wire.resumed(self.session_id, self._token),
                          *self._lost(last_event_id), *self._buffer.drain()]:
                await conn.send(frame)
                if self._sent is not None:
                    self._sent.add(frame)
            self._generation += 1
            self._conn = conn
            self._released = released = asyncio.Event()
            self._attached.set()
            self.resumes += 1
        logger.info("[session %s] resumed (%d so far)", self.session_id, self.resumes)
        await released.wait()

    def _lost(self, last_event_id: str | None) -> list[bytes | str]:
        """What was sent after the event the client read last, and taken from the window."""
        if self._sent is None or last_event_id is None:
            return []
        lost = self._sent.after(lambda frame: self._wire.is_event(frame, last_event_id))
        self._sent.clear()
        if lost is None:
            logger.warning("[session %s] resumed after event %s, which was not among the last "
                           "sent: nothing is sent again", self.session_id, last_event_id[:64])
            return []
        if lost:
            logger.info("[session %s] %d frames sent again after the cut", self.session_id, len(lost))
        return lost

    def _lose(self, code: int | None) -> None:
        """The connection of the moment ended with ``code``: hold the session, or end it."""
        self._generation += 1
        self._conn = None
        self._released.set()
        if self._token is None or self._closing or not resumable(code) or self.grace_s <= 0:
            raise ClientGone(code)
        self._go_away()
        logger.info("[session %s] the connection was cut: held %g s for a resume",
                    self.session_id, self.grace_s)

    def _go_away(self) -> None:
        """No connection from now: silence from now on, until a resume or ``grace_s`` from now."""
        now = asyncio.get_running_loop().time()
        self._deadline = now + self.grace_s
        self._next_silence = now
        self._attached = asyncio.Event()

    async def _while_away(self) -> bytes | str | None:
        """Silence at real time until a resume (then ``None``: read the new connection) or the
        end of the grace (then ``ClientGone``: the session ends as on a close)."""
        loop = asyncio.get_running_loop()
        while self._conn is None:
            now = loop.time()
            if now >= self._deadline or self._closing:
                self.expired = True
                self._tokens.withdraw(self)
                raise ClientGone(status.WS_1006_ABNORMAL_CLOSURE)
            if now >= self._next_silence:
                self._next_silence += _SILENCE_FRAME_S
                self.away_silence_s += _SILENCE_FRAME_S
                return self._wire.silence(_SILENCE_FRAME_S)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self._next_silence, self._deadline) - now):
                    await self._attached.wait()
        return None

    def _close_later(self, conn: ClientConnection) -> None:
        async def close() -> None:
            with contextlib.suppress(TimeoutError, ClientGone):
                async with asyncio.timeout(2.0):
                    await conn.close(status.WS_1008_POLICY_VIOLATION, "resumed on another connection")
        task = asyncio.get_running_loop().create_task(close())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
