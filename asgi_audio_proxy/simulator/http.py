"""The simulator's HTTP side: the upstream's routes and the ``/completions`` SSE body.

Owns: every HTTP endpoint of ``UPSTREAM_PROTOCOL.md`` section 2 at its bare and ``/api/v1``
path, with the upstream's status codes and error texts (FastAPI's ``{"detail": ...}`` form, a
wrapped ``HTTPException`` reading ``"<code>: <detail>"``), and the reply stream of section 4
byte for byte: ``event: message`` once, then ``data: <json>`` lines with Python's default
separators, the echo first, ``"\\n<end>"`` last, and the server's own ``data:{"error": ...}``
form. Fault modes that touch HTTP are applied here.

Must not: hold state of its own; it reads and changes the :class:`~.host.SimulatorHost` it serves.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from asgi_audio_proxy.audio.wav import AudioFormatError, wav_to_pcm16
from asgi_audio_proxy.simulator.host import SimulatorHost
from asgi_audio_proxy.simulator.model import TurnAudioMissing, decode_base64
from asgi_audio_proxy.simulator.recorder import RecordedAck, RecordedReply
from asgi_audio_proxy.simulator.state import ChunkError, Conversation

__all__ = ["ERROR_LINE", "HttpEndpoints", "SimulatedDeath", "ack"]

logger = logging.getLogger("asgi_audio_proxy.simulator")

#: what the upstream writes when a reply fails: a typo in its handler makes this the only text
ERROR_LINE = 'data:{"error": "name \'exc\' is not defined"}\n\n'
_BUSY = "Server busy, please try again later"
_ROUTES = {
    f"{prefix}/{name}": name
    for prefix in ("", "/api/v1")
    for name in ("health", "init_options", "stream", "completions", "stop", "feedback")
}
_SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "Transfer-Encoding": "chunked"}


class SimulatedDeath(RuntimeError):
    """Raised out of the app on purpose (fault ``die_mid_turn``), so the server drops the socket."""


class _Rejected(Exception):
    """The upstream's ``HTTPException`` raised inside a ``try``: its text is ``"<code>: <detail>"``."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"400: {detail}")


def ack(uid: str, reason: str) -> dict[str, Any]:
    """The upstream's acknowledgement body (section 3.3)."""
    return {
        "id": uid,
        "choices": {"role": "assistant", "content": "success", "finish_reason": reason},
    }


def _detail(status_code: int, text: str) -> JSONResponse:
    return JSONResponse({"detail": text}, status_code=status_code)


class HttpEndpoints:
    """The routes of section 2, bound to one simulator."""

    def __init__(self, simulator: SimulatorHost) -> None:
        self._sim = simulator
        handlers: dict[str, tuple[str, Callable[[Request], Awaitable[Response]]]] = {
            "health": ("GET", self._health),
            "init_options": ("POST", self._init_options),
            "stream": ("POST", self._stream),
            "completions": ("POST", self._completions),
            "stop": ("POST", self._stop),
            "feedback": ("POST", self._feedback),
        }
        self._handlers = handlers

    async def respond(self, path: str, request: Request) -> Response:
        """The response to one HTTP request (404/405 in FastAPI's form)."""
        name = _ROUTES.get(path)
        if name is None:
            return _detail(404, "Not Found")
        method, handler = self._handlers[name]
        if request.method != method:
            return JSONResponse(
                {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": method}
            )
        return await handler(request)

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "OK"})

    async def _init_options(self, request: Request) -> Response:
        sim, uid = self._sim, request.headers.get("uid")
        if not sim.multi_conversation or uid:
            sim.conversation_for(uid or "").touch(sim.clock(), stream=False)
        if not uid:
            return _detail(400, "Missing uid in headers")
        if sim.fault == "refuse":
            sim.recorder.fault_struck(sim.clock())
            return _detail(503, _BUSY)
        try:
            self._apply_options(uid, json.loads(await request.body()))
        except Exception as exc:  # the upstream turns every failure here into this 400
            return _detail(400, f"init options error: {exc}")
        finally:
            sim.recorder.changed()
        return JSONResponse(
            {"id": uid, "choices": {"role": "assistant", "content": sim.version, "finish_reason": "done"}}
        )

    def _apply_options(self, uid: str, data: Any) -> None:
        if not isinstance(data, dict) or "messages" not in data:
            raise _Rejected("Invalid request format")
        for message in data.get("messages", []):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise _Rejected("Invalid message format")
            for content in message.get("content", []):
                if content["type"] == "input_audio":
                    _check_voice(content["input_audio"].get("data", ""))
                elif content["type"] == "options":
                    options = content["options"]
                    self._sim.options.value = None  # cleared first, as upstream, even if it fails
                    if options is None:
                        raise ValueError("Invalid None type for options, expected dict type")
                    self._sim.options.value = options
                    self._sim.recorder.options.append(options)
                    logger.info("uid %s set options (%d keys)", uid, len(options))
                else:
                    raise _Rejected(f"Invalid content type: {content['type']}")

    async def _stream(self, request: Request) -> Response:
        sim, uid = self._sim, request.headers.get("uid")
        now = sim.clock()
        if not sim.multi_conversation or uid:
            sim.conversation_for(uid or "").touch(now, stream=True)
        if not uid:
            return _detail(400, "Missing uid in headers")
        conversation = sim.conversation_for(uid)
        if conversation.uid_conflicts(uid):
            return self._reject_chunk(uid, 400, "uid changed in stream")
        fault = sim.fault
        if fault in ("refuse", "ack_error", "ws_close_1011", "skip_forever"):  # they act here
            sim.recorder.fault_struck(now)
        if fault == "refuse":
            return self._reject_chunk(uid, 503, _BUSY)
        if fault in ("ack_error", "ws_close_1011"):
            return self._reject_chunk(uid, 500, "400: Invalid request format")
        try:
            data = json.loads(await request.body())
        except json.JSONDecodeError:
            return self._reject_chunk(uid, 400, "Invalid JSON")
        if not isinstance(data, dict) or "messages" not in data:
            return self._reject_chunk(uid, 500, "400: Invalid request format")
        reason = "skip" if fault == "skip_forever" else ""
        try:
            for message in [] if fault == "skip_forever" else data["messages"]:
                if not isinstance(message, dict) or "role" not in message or "content" not in message:
                    return self._reject_chunk(uid, 500, "400: Invalid message format")
                reason = conversation.process_message(message, now)
        except (ChunkError, TypeError) as exc:
            sim.recorder.errors.append(str(exc))
            return self._reject_chunk(uid, 500, str(exc))
        finally:
            sim.record_accepted(uid, conversation)
            sim.synced(conversation)
        sim.recorder.acks.append(RecordedAck(uid, reason))
        sim.recorder.changed()
        return JSONResponse(ack(uid, reason))

    def _reject_chunk(self, uid: str, status_code: int, text: str) -> Response:
        self._sim.recorder.acks.append(RecordedAck(uid, None, text))
        self._sim.recorder.changed()
        return _detail(status_code, text)

    async def _stop(self, request: Request) -> Response:
        sim, uid = self._sim, request.headers.get("uid")
        if not uid:
            return _detail(400, "Missing uid in headers")
        conversation = sim.conversation_for(uid)
        conversation.request_stop()
        sim.recorder.stops += 1
        sim.synced(conversation)
        logger.info("uid %s: stop requested", uid)
        return JSONResponse(ack(uid, "stop"))

    async def _feedback(self, request: Request) -> Response:
        uid = request.headers.get("uid")
        if not uid:
            return _detail(400, "Missing 'uid' header")
        try:
            data = json.loads(await request.body())
            if "response_id" not in data or "rating" not in data:
                raise _Rejected("Invalid request: must have response_id and rating")
            rating = data.get("rating", "")
            if rating not in ("like", "dislike"):
                raise _Rejected(f"Invalid rating value: {rating}")
        except Exception as exc:  # as the upstream: any failure is a 500 with its text
            return _detail(500, str(exc))
        return JSONResponse(ack(uid, "done"))

    # -- /completions and its SSE body (section 4) ---------------------------------------------

    async def _completions(self, request: Request) -> Response:
        sim, uid = self._sim, request.headers.get("uid")
        if not uid:
            return _detail(400, "Missing uid in headers")
        if sim.fault == "refuse":
            sim.recorder.fault_struck(sim.clock())
            return _detail(503, _BUSY)
        conversation = sim.conversation_for(uid)
        conversation.open_completions(uid, sim.clock())
        sim.recorder.completions_uids.append(uid)
        sim.synced(conversation)
        try:  # parsed after the state changes, and then ignored, as upstream
            json.loads(await request.body())
        except json.JSONDecodeError as exc:
            return _detail(500, str(exc))
        return StreamingResponse(
            self._sse_body(conversation), media_type="text/event-stream", headers=_SSE_HEADERS
        )

    async def _sse_body(self, conversation: Conversation) -> AsyncGenerator[str, None]:
        sim = self._sim
        sim.recorder.sse_opened += 1
        sim.recorder.changed()
        try:
            await sim.turn_event(conversation).wait()
            yield "event: message\n"
            if sim.fault == "error_event":
                conversation.end_reply()
                sim.recorder.fault_struck(sim.clock())
                yield ERROR_LINE
                return
            try:
                async with aclosing(self._reply_lines(conversation)) as lines:
                    async for line in lines:
                        yield line
            except TurnAudioMissing:
                logger.info("turn audio empty (echo guard): error event")
                yield ERROR_LINE
        finally:
            sim.recorder.sse_closed += 1
            sim.synced(conversation)

    def _data_line(self, conversation: Conversation, audio: bytes | None, text: str) -> str:
        message = {
            "id": conversation.uid,
            "response_id": conversation.output_audio_id,
            "choices": [
                {
                    "role": "assistant",
                    "audio": None if audio is None else base64.b64encode(audio).decode("ascii"),
                    "text": text,
                    "finish_reason": "processing",
                }
            ],
        }
        return f"data: {json.dumps(message)}\n\n"

    async def _reply_lines(self, conversation: Conversation) -> AsyncGenerator[str, None]:
        """The upstream's ``generate()``: echo, reply chunks, ``<end>``; reset on every exit."""
        sim = self._sim
        if conversation.stop_requested:  # checked before the try: this path resets once
            conversation.end_reply()
            sim.synced(conversation)
            return
        try:
            yield self._data_line(conversation, conversation.echo_wav(), "assistant:\n")
            if sim.fault in ("stall_sse", "malformed_sse", "malformed_json"):
                sim.recorder.fault_struck(sim.clock())
            if sim.fault == "stall_sse":
                await asyncio.Event().wait()  # never set: no byte more, until the client leaves
            if sim.fault == "malformed_sse":
                yield "data: {not json\n\n"
                return
            if sim.fault == "malformed_json":
                yield f"data: {json.dumps({'choices': 'x'})}\n\n"
                return
            if conversation.stop_requested:
                conversation.end_reply()
                return
            turn, text, heard_s, voiced_s, chunks = conversation.generate(sim.clock())
            if chunks:
                sim.recorder.replies.append(
                    RecordedReply(conversation.uid or "", turn, text, heard_s, voiced_s, len(chunks))
                )
            for index, chunk in enumerate(chunks):
                await asyncio.sleep(sim.first_chunk_delay_s if index == 0 else sim.chunk_delay_s)
                if conversation.stop_requested:
                    conversation.end_reply()
                    return
                if sim.fault == "die_mid_turn" and index == 1:
                    sim.die(conversation)
                    raise SimulatedDeath("simulated upstream death mid-turn")
                conversation.chunk_sent()
                yield self._data_line(conversation, chunk.wav, chunk.text)
                conversation.chunk_done()
            yield self._data_line(conversation, None, "\n<end>")
        finally:
            conversation.end_reply()
            sim.synced(conversation)


def _check_voice(data: Any) -> None:
    """A voice-clone file must decode; the upstream loads any audio, we can only check WAVs."""
    if data is None or len(data) == 0:
        return
    try:
        audio = decode_base64(data)
        if audio[:4] == b"RIFF":
            wav_to_pcm16(audio)
    except AudioFormatError as exc:
        raise ValueError(f"Process customized audio error: {exc}") from exc
