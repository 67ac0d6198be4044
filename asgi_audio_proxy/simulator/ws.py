"""The simulator's stream WebSocket: one :class:`StreamSocket` per connection.

Owns: ``UPSTREAM_PROTOCOL.md`` section 3 on the server side: the ``uid`` query check (a close
before accept, which the server turns into a 403), one compact JSON ack per text frame, the error
answers that keep the socket open (``Invalid JSON``, ``UID changed in stream``, ``Invalid request
format``, ``Invalid message format`` followed by the ack), and the 1011 closes (``Unexpected
error: 'text'`` for a binary frame, ``Internal server error: ...`` for a failed message). Fault
modes that touch the socket are applied here.

Must not: keep state beyond its connection; conversation state belongs to the simulator.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette import status
from starlette.responses import JSONResponse
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from asgi_audio_proxy.simulator.host import SimulatorHost
from asgi_audio_proxy.simulator.http import SimulatedDeath, ack
from asgi_audio_proxy.simulator.recorder import RecordedAck
from asgi_audio_proxy.simulator.state import ChunkError

__all__ = ["StreamSocket"]

logger = logging.getLogger("asgi_audio_proxy.simulator")


class StreamSocket:
    """One client connection to ``/ws/stream`` (or ``/ws/api/v1/stream``).

    Args:
        simulator: the simulator whose conversations the frames feed.
        websocket: the connection, not yet accepted.
    """

    def __init__(self, simulator: SimulatorHost, websocket: WebSocket) -> None:
        self._sim = simulator
        self._ws = websocket
        #: resolved when the simulated server dies (fault ``die_mid_turn``)
        self._doom: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def doom(self) -> asyncio.Future[None]:
        return self._doom

    async def run(self) -> None:
        """Serve the connection until the client leaves or the server closes it."""
        sim, uid = self._sim, self._ws.query_params.get("uid")
        if sim.fault == "refuse":
            sim.recorder.fault_struck(sim.clock())
            await self._refuse()
            return
        if not uid:  # closed before accept: the server answers the handshake with 403
            await self._ws.close(code=status.WS_1008_POLICY_VIOLATION)
            return
        await self._ws.accept()
        sim.recorder.ws_opened += 1
        sim.recorder.changed()
        try:
            await self._serve(uid)
        except WebSocketDisconnect:
            pass
        finally:
            sim.recorder.ws_closed += 1
            sim.recorder.changed()

    async def _refuse(self) -> None:
        if "websocket.http.response" in self._ws.scope.get("extensions", {}):
            busy = JSONResponse({"detail": "Server busy, please try again later"}, status_code=503)
            await self._ws.send_denial_response(busy)
        else:
            await self._ws.close(code=status.WS_1013_TRY_AGAIN_LATER)

    async def _receive(self) -> Message:
        receiving = asyncio.ensure_future(self._ws.receive())
        waiting: set[asyncio.Future[Any]] = {receiving, self._doom}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not receiving.done():
                receiving.cancel()
        if self._doom.done():
            # leaving the app with an exception makes the server drop the TCP connection
            raise SimulatedDeath("simulated upstream death")
        return receiving.result()

    async def _close(self, reason: str) -> None:
        logger.info("closing stream socket 1011: %s", reason[:80])
        self._sim.recorder.errors.append(reason)
        self._sim.recorder.changed()
        await self._ws.close(code=status.WS_1011_INTERNAL_ERROR, reason=reason)

    async def _answer(self, uid: str, body: dict[str, Any]) -> None:
        recorder = self._sim.recorder
        if "error" in body:
            recorder.acks.append(RecordedAck(uid, None, str(body["error"])))
        else:
            recorder.acks.append(RecordedAck(uid, str(body["choices"]["finish_reason"])))
        recorder.changed()
        await self._ws.send_json(body)  # compact, as the upstream's Starlette writes it

    async def _serve(self, uid: str) -> None:
        sim = self._sim
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                return
            if sim.multi_conversation:
                sim.recorder.arrivals[uid].append(time.perf_counter())
            text = message.get("text")
            if text is None:  # the upstream's receive_text() fails on message["text"]
                await self._close("Unexpected error: 'text'")
                return
            if sim.fault == "ws_close_1011":
                sim.recorder.fault_struck(sim.clock())
                await self._close("Internal server error: simulated fault")
                return
            if not await self._handle_frame(uid, text):
                return

    async def _handle_frame(self, uid: str, text: str) -> bool:
        """Answer one text frame; ``False`` once the socket has been closed."""
        sim = self._sim
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            await self._answer(uid, {"error": "Invalid JSON"})
            return True
        if sim.fault == "ack_error":
            sim.recorder.fault_struck(sim.clock())
            await self._answer(uid, {"error": "Invalid request format"})
            return True
        conversation = sim.conversation_for(uid)
        now = sim.clock()
        conversation.touch(now, stream=True)
        if conversation.uid_conflicts(uid):
            await self._answer(uid, {"error": "UID changed in stream"})
            return True
        if not isinstance(data, dict) or "messages" not in data:
            await self._answer(uid, {"error": "Invalid request format"})
            return True
        skipping = sim.fault == "skip_forever"
        if skipping:
            sim.recorder.fault_struck(now)
        reason = "skip" if skipping else ""
        try:
            for item in [] if skipping else data["messages"]:
                if not isinstance(item, dict) or "role" not in item or "content" not in item:
                    await self._answer(uid, {"error": "Invalid message format"})
                    continue
                reason = conversation.process_message(item, now)
        except (ChunkError, TypeError) as exc:  # TypeError: "messages" not iterable
            await self._close(f"Internal server error: {exc}")
            return False
        finally:
            sim.record_accepted(uid, conversation)
            sim.synced(conversation)
        await self._answer(uid, ack(uid, reason))
        return True
