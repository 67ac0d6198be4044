"""An ASGI app that behaves like the MiniCPM-o-Demo gateway (``gateway.py``) and its workers.

Owns: the gateway's routes a client of ``/v1/realtime?mode=audio`` meets: ``GET /health``
(always 200 while the gateway runs, busy workers or not), ``GET /status`` (workers and queue),
and the WebSocket itself: accept, then the FIFO queue (``session.queued`` with position, ETA,
ticket and queue length, a ``session.queue_update`` every ``queue_update_s``, ``error``
``queue_full`` and close 1013 past ``max_queue``), ``session.queue_done`` always once a worker is
assigned, then the conversation on that worker (:mod:`.model`): ``session.update`` answered by
``session.created``, each append by one event, an append that comes while the model is busy
replacing the one waiting (the older is dropped silently: the model always takes the newest),
``session.go_away`` ``go_away_s`` before the session cap and ``session.closed`` ``timeout`` at
it (``max_session_s``; 600 s for audio, 300 s for video by default), ``session.closed``
``context_full`` once the KV cache reaches ``context_tokens``, ``stopped`` after the client's
``session.close``, ``server_shutdown`` (and 1001) when :meth:`GatewaySimulator.close` is called. A
frame that is not JSON text closes the socket with 1003; a violation of the schema is answered by
an ``error`` event and the conversation goes on (:mod:`.wire`, following the protocol's documents:
the gateway's code passes unknown events and missing fields on to its worker, whose failure comes
back as an ``error`` coded ``inference_failed``).

``session.go_away`` and a client's own ``session_id`` follow the documents of commit 0e23eab;
the gateway's later code sends no ``go_away`` (``go_away_s=None``) and names every session itself.

The gateway at the commit read leaves its socket open after ``session.closed`` (uvicorn drops
the connection when the handler returns); this simulator closes it with 1000, which a client
that takes ``session.closed`` as the end cannot tell apart.

Must not: import the proxy's session, edge or upstream code: it plays the other side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

import uvicorn
from starlette import status
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import Receive, Scope, Send
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

__all__ = ["GatewaySimulator", "run_gateway_simulator"]

logger = logging.getLogger("asgi_audio_proxy.simulator")

#: the gateway's session caps by mode
MAX_SESSION_S = {"audio": 600.0, "video": 300.0}
CONTEXT_TOKENS = 8192
#: the gateway's period between two queue updates
QUEUE_UPDATE_S = 3.0
#: the model's time for one append; a GPU's is a few hundred ms, tests want less
STEP_S = 0.02
GO_AWAY_S = 10.0
_SAFE_ID = re.compile(r"[^A-Za-z0-9_\-]")


class _Ended(Exception):
    """The conversation is over; the socket was closed with ``code``."""


class GatewaySimulator:
    """The simulated gateway, one ASGI app.

    Args:
        workers: conversations held at once (the gateway's worker count).
        max_queue: clients waiting at most.
        max_session_s: the session cap for every mode (``None``: the gateway's per mode).
        context_tokens: the context the KV cache fills (``context_full`` at it).
        step_s: the model's time per append (appends that come faster are dropped but the newest).
        queue_update_s: seconds between two ``session.queue_update`` events.
        go_away_s: ``session.go_away`` comes this long before the session cap (``None``: never).
        first_piece_s: audio in the first piece of each reply.
        expected_s: the conversation length the queue's ETA assumes until some have ended.
        clock: seconds, for the queue's estimates (``time.monotonic`` by default).
    """

    def __init__(self, *, workers: int = 1, max_queue: int = 1000, max_session_s: float | None = None,
                 context_tokens: int = CONTEXT_TOKENS, step_s: float = STEP_S,
                 queue_update_s: float = QUEUE_UPDATE_S, go_away_s: float | None = GO_AWAY_S,
                 first_piece_s: float = 0.5, expected_s: float = 120.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.queue = WorkerQueue(workers, max_queue, expected_s)
        self.workers = workers
        self.max_session_s = max_session_s
        self.context_tokens = context_tokens
        self.step_s = step_s
        self.queue_update_s = queue_update_s
        self.go_away_s = go_away_s
        self.first_piece_s = first_piece_s
        self.clock = clock
        self.recorder = GatewayRecorder()
        self._assigned: dict[str, asyncio.Future[int]] = {}
        #: set by :meth:`close`: every live conversation ends with ``server_shutdown``
        self.shutting_down = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):  # mounted below a prefix (the demo's /upstream)
            path = path[len(root):]
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            if path == "/v1/realtime":
                await _Connection(self, websocket).run()
            else:
                await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
            return
        request = Request(scope, receive)
        if path == "/health":
            response: Any = JSONResponse({"status": "healthy",
                                          "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")})
        elif path == "/status":
            idle = self.queue.idle_workers
            response = JSONResponse({"gateway_healthy": True, "total_workers": self.workers,
                                     "idle_workers": idle, "busy_workers": self.workers - idle,
                                     "queue_length": self.queue.length,
                                     "max_queue_size": self.queue.max_queue})
        else:
            response = PlainTextResponse("Not Found", status_code=404)
        await response(request.scope, receive, send)

    def enqueue(self, ticket_id: str) -> asyncio.Future[int] | Ticket:
        """A worker for ``ticket_id`` (a resolved future), or its waiting ticket.

        Raises:
            QueueFull: the queue is full.
        """
        outcome = self.queue.enqueue(ticket_id, self.clock())
        if isinstance(outcome, Ticket):
            self._assigned[ticket_id] = asyncio.get_running_loop().create_future()
            return outcome
        future = self._assigned[ticket_id] = asyncio.get_running_loop().create_future()
        future.set_result(outcome)
        return future

    def assigned(self, ticket_id: str) -> asyncio.Future[int]:
        return self._assigned[ticket_id]

    def close(self) -> None:
        """The gateway is going away: each live conversation gets ``session.closed``
        ``server_shutdown`` and a 1001 close."""
        self.shutting_down.set()

    def leave(self, ticket_id: str, worker: int | None) -> None:
        """The client of ``ticket_id`` is gone: free its worker, or its place in the queue."""
        self._assigned.pop(ticket_id, None)
        now = self.clock()
        served = self.queue.release(worker, now) if worker is not None else self.queue.cancel(ticket_id, now)
        for ticket, given in served:
            future = self._assigned.get(ticket)
            if future is not None and not future.done():
                future.set_result(given)


class _Connection:
    """One client of ``/v1/realtime``, from accept to close."""

    def __init__(self, gateway: GatewaySimulator, websocket: WebSocket) -> None:
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


def run_gateway_simulator(host: str = "127.0.0.1", port: int = 8006, *, log_level: str = "info",
                          **options: Any) -> None:
    """Serve a :class:`GatewaySimulator` with uvicorn until interrupted (``options`` go to it)."""
    uvicorn.run(GatewaySimulator(**options), host=host, port=port, log_level=log_level, lifespan="on",
                ws_ping_interval=None)
