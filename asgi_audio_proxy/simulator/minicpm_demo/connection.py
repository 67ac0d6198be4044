"""One client of the simulated gateway's ``/v1/realtime``, from accept to close.

Owns: :class:`GatewayConnection`: the accept, the wait for a worker in the gateway's queue
(``session.queued``, a ``session.queue_update`` every ``queue_update_s``, ``session.queue_done``
always once a worker is the client's; ``error`` ``queue_full`` and 1013 past the bound), then the
conversation: the client's frames read as :mod:`.wire` says (1003 for one that is not JSON text,
an ``error`` for a violation), the model (:mod:`.model`) fed one append at a time, the newest
replacing one it has not taken yet, the session cap (``go_away``, then ``timeout``), the full
context, the client's close, the gateway's shutdown; and :class:`GatewayHost`, what it needs of
the gateway. Must not: keep state beyond its connection: the queue and the record are the
gateway's.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import NoReturn, Protocol

from starlette import status
from starlette.websockets import WebSocket, WebSocketDisconnect

from .model import DuplexModel, Listened
from .queue import QueueFull, Ticket, WorkerQueue
from .recorder import GatewayRecorder
from .wire import (
    Append,
    Close,
    CloseReason,
    Update,
    Violation,
    audio_delta,
    closed,
    created,
    error,
    go_away,
    listen,
    parse_client_frame,
    queue_done,
    queue_update,
    queued,
)

__all__ = ["MAX_SESSION_S", "GatewayConnection", "GatewayHost"]

#: the gateway's session caps by mode
MAX_SESSION_S = {"audio": 600.0, "video": 300.0}
_SAFE_ID = re.compile(r"[^A-Za-z0-9_\-]")


class GatewayHost(Protocol):
    """What a connection needs of the gateway it belongs to (:class:`.app.GatewaySimulator`)."""

    queue: WorkerQueue
    recorder: GatewayRecorder
    max_session_s: float | None
    context_tokens: int
    step_s: float
    queue_update_s: float
    go_away_s: float | None
    first_piece_s: float
    shutting_down: asyncio.Event

    def enqueue(self, ticket_id: str) -> asyncio.Future[int] | Ticket: ...
    def assigned(self, ticket_id: str) -> asyncio.Future[int]: ...
    def leave(self, ticket_id: str, worker: int | None) -> None: ...


class _Ended(Exception):
    """The conversation is over (the socket is closed, or the client is gone)."""


class GatewayConnection:
    """One client of ``/v1/realtime``, from accept to close.

    Args:
        gateway: the simulated gateway it is a client of.
        websocket: the connection, not yet accepted.
    """

    def __init__(self, gateway: GatewayHost, websocket: WebSocket) -> None:
        self._gw = gateway
        self._ws = websocket
        self._rec = gateway.recorder
        query = websocket.query_params
        self._mode = query.get("mode", "video")
        given = query.get("session_id")
        self.session_id = _SAFE_ID.sub("_", given) if given else f"rt_{int(time.time() * 1000)}"
        self._ticket = f"q_{uuid.uuid4().hex[:12]}"
        self._model = DuplexModel(first_piece_s=gateway.first_piece_s)
        self._send_lock = asyncio.Lock()
        self._is_closed = False
        self._is_created = False
        self._pending: Append | None = None
        self._has_pending = asyncio.Event()

    async def run(self) -> None:
        await self._ws.accept()
        worker: int | None = None
        try:
            worker = await self._wait_for_worker()
            if worker is None:
                return
            await self._send(queue_done())
            await self._converse()
        except _Ended:
            pass
        finally:
            self._gw.leave(self._ticket, worker)
            self._rec.ended.append(self.session_id)
            self._rec.changed()

    async def _wait_for_worker(self) -> int | None:
        try:
            outcome = self._gw.enqueue(self._ticket)
        except QueueFull as exc:
            await self._send(error("queue_full", str(exc), "server_error"))
            await self._close(status.WS_1013_TRY_AGAIN_LATER)
            return None
        if isinstance(outcome, asyncio.Future):
            return outcome.result()
        await self._send(queued(outcome.position, outcome.estimated_wait_s, self._ticket,
                                self._gw.queue.length))
        future = self._gw.assigned(self._ticket)
        while True:  # the gateway reads nothing from its client while it waits
            try:
                return await asyncio.wait_for(asyncio.shield(future), self._gw.queue_update_s)
            except TimeoutError:
                ticket = self._gw.queue.ticket(self._ticket)
                if ticket is not None:
                    await self._send(queue_update(ticket.position, ticket.estimated_wait_s,
                                                  self._gw.queue.length))

    async def _converse(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._receive_from_client())
                tg.create_task(self._run_model())
                tg.create_task(self._watch_time())
                tg.create_task(self._watch_shutdown())
        except* _Ended:
            pass

    async def _receive_from_client(self) -> None:
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                raise _Ended
            text = message.get("text")
            if text is None:
                await self._close(status.WS_1003_UNSUPPORTED_DATA)
            self._rec.frames.append(text)
            self._rec.changed()
            try:
                event = json.loads(text)
            except ValueError:
                await self._close(status.WS_1003_UNSUPPORTED_DATA)
            parsed = parse_client_frame(event if isinstance(event, dict) else {}, is_created=self._is_created)
            if isinstance(parsed, Violation):
                await self._send(error(parsed.code, parsed.message))
            elif isinstance(parsed, Update):
                prompt_length = self._model.prepare(parsed.instructions,
                                                    bool(parsed.ref_audio or parsed.tts_ref_audio))
                await asyncio.sleep(self._gw.step_s)  # the worker prefills the prompt
                self._is_created = True
                self._rec.sessions.append(self.session_id)
                await self._send(created(self.session_id, prompt_length))
            elif isinstance(parsed, Close):
                await self._end("stopped")
            elif isinstance(parsed, Append):
                if self._pending is not None:
                    self._rec.dropped += 1  # too fast: the model takes the newest
                    self._rec.changed()
                self._pending = parsed
                self._has_pending.set()

    async def _run_model(self) -> None:
        while True:
            await self._has_pending.wait()
            self._has_pending.clear()
            append, self._pending = self._pending, None
            if append is None:
                continue
            self._rec.appends[self.session_id].append(append.samples)
            if append.force_listen:
                self._rec.force_listens[self.session_id] += 1
            self._rec.changed()
            await asyncio.sleep(self._gw.step_s)  # the model's time for one append
            out = self._model.step(append.samples, append.force_listen)
            if isinstance(out, Listened):
                await self._send(listen(out.kv_cache_length))
            else:
                await self._send(audio_delta(out.text, out.samples, out.end_of_turn, out.kv_cache_length))
            if out.kv_cache_length >= self._gw.context_tokens:
                await self._end("context_full")

    async def _watch_time(self) -> None:
        cap_s = self._gw.max_session_s or MAX_SESSION_S.get(self._mode, MAX_SESSION_S["video"])
        warn_s = self._gw.go_away_s
        if warn_s is not None and 0 < warn_s < cap_s:
            await asyncio.sleep(cap_s - warn_s)
            await self._send(go_away("timeout", round(warn_s * 1000)))
            cap_s = warn_s
        await asyncio.sleep(cap_s)
        await self._end("timeout")

    async def _watch_shutdown(self) -> None:
        await self._gw.shutting_down.wait()
        await self._end("server_shutdown", status.WS_1001_GOING_AWAY)

    async def _end(self, reason: CloseReason, code: int = status.WS_1000_NORMAL_CLOSURE) -> NoReturn:
        await self._send(closed(reason))
        await self._close(code)

    async def _send(self, text: str) -> None:
        async with self._send_lock:
            if self._is_closed:
                raise _Ended
            try:
                await self._ws.send_text(text)
            except (WebSocketDisconnect, OSError, RuntimeError) as exc:  # the client is gone
                raise _Ended from exc
            self._rec.keep_sent(self.session_id if self._is_created else self._ticket, text)

    async def _close(self, code: int) -> NoReturn:
        async with self._send_lock:
            if not self._is_closed:
                self._is_closed = True
                self._rec.closes.append(code)
                self._rec.changed()
                await self._ws.close(code=code)
        raise _Ended
