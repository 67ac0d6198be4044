"""An ASGI app that behaves like the MiniCPM-o-Demo gateway (``gateway.py``) and its workers.

Owns: the gateway's routes a client of ``/v1/realtime?mode=audio`` meets: ``GET /health``
(always 200 while the gateway runs, busy workers or not), ``GET /status`` (workers and queue),
its queue and record, and the WebSocket itself (each client a :class:`.GatewayConnection`):
accept, then the FIFO queue (``session.queued`` with position, ETA,
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
import logging
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette import status
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from .connection import GatewayConnection
from .queue import Ticket, WorkerQueue
from .recorder import GatewayRecorder

__all__ = ["GatewaySimulator", "run_gateway_simulator"]

logger = logging.getLogger("asgi_audio_proxy.simulator")

CONTEXT_TOKENS = 8192
#: the gateway's period between two queue updates
QUEUE_UPDATE_S = 3.0
#: the model's time for one append; a GPU's is a few hundred ms, tests want less
STEP_S = 0.02
GO_AWAY_S = 10.0


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
                await GatewayConnection(self, websocket).run()
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


def run_gateway_simulator(host: str = "127.0.0.1", port: int = 8006, *, log_level: str = "info",
                          **options: Any) -> None:
    """Serve a :class:`GatewaySimulator` with uvicorn until interrupted (``options`` go to it)."""
    uvicorn.run(GatewaySimulator(**options), host=host, port=port, log_level=log_level, lifespan="on",
                ws_ping_interval=None)
