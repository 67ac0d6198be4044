"""An ASGI app that behaves like vLLM-Omni serving MiniCPM-o 4.5 full duplex, with no GPU.

Owns: the routes a duplex deploy mounts (``/v1/realtime?duplex=1`` and its alias ``/v1/duplex``,
``/v1/models``, ``/health``) and one connection's life as ``serving.py`` runs it: the first
message opens (``session.update``), resumes (``session.resume``) or opens a default session and
is then run as a command (anything else); JSON, size and shape errors answered with an
``error`` and the socket kept; ``session.event_ack`` and ``session.close`` handled beside the
session; ``?model=`` without ``autostart=0`` (or ``resume=1``) opens a default session before any
event, as the real server does; every other event handed to the session (``conversation.py``);
a disconnect leaves the session in its grace (``sessions.py``). Test hooks:
:meth:`DuplexSimulator.drop` (the server cuts a socket), :meth:`DuplexSimulator.expire`
(``session.expired``), ``table.drop_at`` (cut the socket instead of sending the next event of a
type, which stays in the journal).
Must not: import ``session`` or ``upstreams`` (it plays the other side).

Run it: ``asgi-audio-proxy simulate --kind vllm-duplex --port 8099``, or
``run_duplex_simulator(host, port)``, or mount ``DuplexSimulator()`` in any ASGI server.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from typing import Any

import uvicorn
from starlette import status
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from asgi_audio_proxy.simulator.vllm_duplex.recorder import DuplexRecorder
from asgi_audio_proxy.simulator.vllm_duplex.sessions import HostedSession, SessionTable, Socket
from asgi_audio_proxy.simulator.vllm_duplex.wire import error, event

__all__ = ["DuplexSimulator", "run_duplex_simulator"]

MODEL = "openbmb/MiniCPM-o-4_5"
#: ``duplex_session.max_sessions`` in ``minicpmo_4_5.yaml``
MAX_SESSIONS = 4
#: how long a dropped session waits for its resume (vLLM-Omni's default)
DISCONNECT_GRACE_S = 30.0
#: the first message must come within this (``_DEFAULT_CONFIG_TIMEOUT_S``)
CONFIG_TIMEOUT_S = 10.0
#: a connection silent this long counts as dropped (``_DEFAULT_IDLE_TIMEOUT_S``)
IDLE_TIMEOUT_S = 300.0
#: the largest client event read (``MAX_EVENT_BYTES``)
MAX_EVENT_BYTES = 16 * 2**20
_PATHS = frozenset({"/v1/realtime", "/v1/duplex"})
_FALSE = frozenset({"0", "false", "no", "off"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_CLOSE_TYPES = frozenset({"session.close", "close", "close_session", "session_close"})


class DuplexSimulator:
    """The simulated vLLM-Omni duplex server; an ASGI app.

    Args:
        max_sessions: sessions held at once (attached or in their grace); more are refused
            with ``resource_exhausted``.
        disconnect_grace_s: how long a dropped session keeps its slot, waiting for a resume.
        reply_units: ``None``: one 1 s unit of reply per second of speech heard; else exactly this.
        model: the served model name.
    """

    def __init__(self, *, max_sessions: int = MAX_SESSIONS, disconnect_grace_s: float = DISCONNECT_GRACE_S,
                 reply_units: int | None = None, model: str = MODEL,
                 config_timeout_s: float = CONFIG_TIMEOUT_S, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        if max_sessions < 1:
            raise ValueError(f"invalid max_sessions={max_sessions!r}: expected at least 1")
        if disconnect_grace_s < 0:
            raise ValueError(f"invalid disconnect_grace_s={disconnect_grace_s!r}: expected >= 0")
        if reply_units is not None and reply_units < 1:
            raise ValueError(f"invalid reply_units={reply_units!r}: expected None or >= 1")
        self.model = model
        self.config_timeout_s = config_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.recorder = DuplexRecorder()
        self.table = SessionTable(self.recorder, max_sessions=max_sessions,
                                  disconnect_grace_s=disconnect_grace_s, reply_units=reply_units)

    def close(self) -> None:
        """Stop the sessions' grace timers (at shutdown: nothing outlives the server)."""
        for hosted in self.table.sessions.values():
            if hosted.grace is not None:
                hosted.grace.cancel()

    async def drop(self, session_id: str | None = None, *, forget: bool = False) -> None:
        """Cut the socket of one session (or every one); ``forget``: the session ends too, as if
        its grace had run out, so a resume finds it expired."""
        for hosted in [h for sid, h in self.table.sessions.items() if session_id in (None, sid)]:
            await self.table.drop(hosted)
            if forget:
                self.table.forget(hosted.session_id, "disconnect_grace_expired")

    async def expire(self, session_id: str | None = None) -> None:
        """The engine reaps one session (or every one): ``session.expired``, then the socket closes."""
        for sid in [s for s in self.table.sessions if session_id in (None, s)]:
            await self.table.expire(sid)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            self.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):  # mounted below a prefix (the demo's /upstream)
            path = path[len(root):] or "/"
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            duplex = websocket.query_params.get("duplex", "1").strip().lower()
            if path not in _PATHS or duplex in _FALSE:  # a duplex deploy mounts no turn-based route
                await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
                return
            await self._serve(websocket)
            return
        if path == "/health":
            response: Response = Response(status_code=200)
        elif path == "/v1/models":
            response = JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})
        else:
            response = JSONResponse({"detail": "Not Found"}, status_code=404)
        await response(scope, receive, send)

    async def _serve(self, websocket: WebSocket) -> None:
        await websocket.accept()

        async def send(text: str) -> None:
            try:
                await websocket.send_text(text)
            except WebSocketDisconnect as exc:  # the table takes a failed send as OSError
                raise ConnectionResetError(f"the client is gone ({exc.code})") from exc

        async def close(code: int) -> None:
            with contextlib.suppress(RuntimeError, OSError):  # closed already, or the client is gone
                await websocket.close(code=code)

        socket = Socket(send, close)
        hosted: HostedSession | None = None
        try:
            hosted = await self._handshake(websocket, socket)
            if hosted is not None:
                await self._read(websocket, socket, hosted)
        except WebSocketDisconnect:
            pass
        finally:
            if hosted is not None:
                self.table.detach(hosted, socket)
            await close(status.WS_1000_NORMAL_CLOSURE)

    async def _handshake(self, websocket: WebSocket, socket: Socket) -> HostedSession | None:
        query = websocket.query_params
        resume_only = (query.get("resume", "").strip().lower() in _TRUE
                       or query.get("autostart", "").strip().lower() in _FALSE)
        if query.get("model") and not resume_only:  # autostart: a default session, before any event
            return await self._open(socket, {"model": query["model"]}, None)
        try:
            async with asyncio.timeout(self.config_timeout_s):
                raw = await websocket.receive_text()
        except TimeoutError:
            await socket.send(json.dumps(error("config_timeout", "Timeout waiting for session.update")))
            return None
        try:
            first = json.loads(raw)
        except json.JSONDecodeError:
            await socket.send(json.dumps(error("invalid_json", "Invalid JSON in session.update")))
            return None
        if not isinstance(first, dict):
            await socket.send(json.dumps(error("bad_event", "Realtime event must be a JSON object")))
            return None
        if first.get("type") == "session.resume":
            return await self.table.resume(first, socket)
        pending: dict[str, Any] | None = None
        if first.get("type") == "session.update" and isinstance(first.get("session"), dict):
            config = dict(first["session"])
        else:  # any other first event opens a default session, then runs as a command
            config, pending = {"model": query.get("model") or self.model}, first
        config.setdefault("model", query.get("model") or self.model)
        return await self._open(socket, config, pending)

    async def _open(self, socket: Socket, config: dict[str, Any],
                    pending: dict[str, Any] | None) -> HostedSession | None:
        opened = self.table.open(config, socket)
        if not isinstance(opened, HostedSession):
            await socket.send(json.dumps(opened))
            return None
        session = opened.conversation.session()
        await self.table.emit(opened, [
            event("session.created", incarnation=0, attachment_generation=opened.generation,
                  resume_token=opened.resume_token, session=session),
            event("session.updated", session=session)])
        if pending is not None:
            await self._dispatch(opened, pending)
        return opened

    async def _read(self, websocket: WebSocket, socket: Socket, hosted: HostedSession) -> None:
        timeout_s = hosted.conversation.config.get("idle_timeout_s") or self.idle_timeout_s
        while hosted.socket is socket:
            try:
                async with asyncio.timeout(float(timeout_s)):
                    raw = await websocket.receive_text()
            except TimeoutError:
                return  # as a disconnect: the session waits in its grace
            if hosted.socket is not socket:
                return  # a resume on another socket took the session over
            if len(raw.encode()) > MAX_EVENT_BYTES:
                await socket.send(json.dumps(error("event_too_large", "Duplex event too large")))
                continue
            try:
                message = json.loads(raw)
            except json.JSONDecodeError:
                await socket.send(json.dumps(error("invalid_json", "Invalid JSON event")))
                continue
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                await socket.send(json.dumps(error("bad_event", "Duplex event must be a JSON object "
                                                                "with a type")))
                continue
            if message["type"] in _CLOSE_TYPES:
                self._record(hosted, message)
                reason = message.get("reason")
                await self.table.close(hosted, reason if isinstance(reason, str) and reason
                                       else "client_close")
                return
            await self._dispatch(hosted, message)

    async def _dispatch(self, hosted: HostedSession, message: dict[str, Any]) -> None:
        self._record(hosted, message)
        kind = message["type"]
        if kind == "session.event_ack":
            refused = self.table.acknowledge(hosted, message.get("server_event_seq"))
            await self.table.emit(hosted, [refused] if refused else [])
        elif kind == "session.resume":
            await self.table.emit(hosted, [error("unsupported_session_resume", "session.resume must be "
                                                 "the first message of a new connection",
                                                 client_event_id=message.get("event_id"))])
        else:
            await self.table.emit(hosted, hosted.conversation.handle(message))

    def _record(self, hosted: HostedSession, message: dict[str, Any]) -> None:
        kind = message["type"]
        kept = dict(message)
        if kind == "input_audio_buffer.append" and isinstance(kept.get("audio"), str):
            audio = kept["audio"]
            kept["audio"] = len(audio)
            with contextlib.suppress(binascii.Error, ValueError):  # the session answers bad audio
                self.recorder.audio[hosted.session_id] += base64.b64decode(audio, validate=True)
        elif kind in ("response.cancel", "barge_in", "output_audio_buffer.clear", "turn.signal"):
            self.recorder.interruptions.append((hosted.session_id, kind))
        elif kind in ("playback.ack", "audio.playback_ack"):
            self.recorder.acks.append(kept)
        self.recorder.received.append((hosted.session_id, kept))
        self.recorder.changed()


def run_duplex_simulator(host: str = "127.0.0.1", port: int = 8099, *, max_sessions: int = MAX_SESSIONS,
                         disconnect_grace_s: float = DISCONNECT_GRACE_S, log_level: str = "info") -> None:
    """Serve a :class:`DuplexSimulator` with uvicorn until interrupted (blocks)."""
    simulator = DuplexSimulator(max_sessions=max_sessions, disconnect_grace_s=disconnect_grace_s)
    uvicorn.run(simulator, host=host, port=port, log_level=log_level, lifespan="on")
