"""Bad input in the Realtime and Twilio dialects, beside a native bystander on the same proxy.

One app serves the three dialects (native at ``/``, Realtime at ``/v1/realtime``, Twilio at
``/twilio``) over one multi-conversation simulator. Each case runs one offending client while a
native client completes its round trip (``observe.bystander``): a Realtime client gets the
``error`` event the real API sends and goes on (a flood ends with 1008); a Twilio call gets
nothing it would reject (Twilio's rules are checked on every frame) and the session's accounting
balances however the call goes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.dialects.realtime import realtime_dialect
from asgi_audio_proxy.dialects.twilio import twilio_dialect_factory
from asgi_audio_proxy.edge.middleware import AudioProxyMiddleware
from asgi_audio_proxy.session.stats import SessionStats
from asgi_audio_proxy.simulator.recorder import SimulatorRecorder
from tests.dialects.test_realtime_faults import append, next_event
from tests.dialects.twilio_peer import TwilioPeer, check_outbound, inbound_message, start_body
from tests.fakes import OpenLeaser
from tests.faults.observe import Checks, Outcome, bystander, table_config, table_simulator, upstream_settled
from tests.servers import serve
from tests.signals import silence, tone
from tests.timing import within

__all__ = ["DIALECT_CASES", "dialect_input"]

SID = "MZ00000000000000000000000000000001"
Run = Callable[[str, SimulatorRecorder, Checks], Awaitable[str]]


@dataclass(frozen=True)
class DialectCase:
    expected: str
    run: Run
    config: dict[str, Any] | None = None


@contextlib.asynccontextmanager
async def three_dialects(server: str, upstream_url: str, **config: Any
                         ) -> AsyncIterator[tuple[AudioProxyMiddleware, str, list[SessionStats]]]:
    ended: list[SessionStats] = []

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    app = AudioProxyMiddleware(
        not_found, path="/", config=table_config(upstream_url, chunk_duration=0.2, **config),
        leaser=OpenLeaser(upstream_url), on_session_end=ended.append,
        dialects={"/v1/realtime": realtime_dialect, "/twilio": twilio_dialect_factory(stop_digits="*")})
    try:
        async with serve(server, app) as port:
            yield app, f"ws://127.0.0.1:{port}", ended
    finally:
        await app.proxy.aclose()


# -- Realtime ---------------------------------------------------------------------------------

def realtime_error(frame: str, code: str, param: str | None) -> Run:
    async def run(base: str, recorder: SimulatorRecorder, checks: Checks) -> str:
        async with connect(base + "/v1/realtime?model=minicpm-o", open_timeout=within(5)) as ws:
            checks.equal("first event", (await next_event(ws))["type"], "session.created")
            await ws.send(frame)
            error = await next_event(ws)
            checks.equal("answer", (error["type"], error.get("error", {}).get("type"),
                                    error.get("error", {}).get("code"), error.get("error", {}).get("param")),
                         ("error", "invalid_request_error", code, param))
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))  # and it goes on
            checks.equal("then", (await next_event(ws))["type"], "input_audio_buffer.cleared")
        return f"error {code}" + (f" ({param})" if param else "") + "; goes on"
    return run


async def realtime_flood(base: str, recorder: SimulatorRecorder, checks: Checks) -> str:
    async with connect(base + "/v1/realtime?model=minicpm-o", open_timeout=within(5)) as ws:
        await next_event(ws)
        for _ in range(30):
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        codes: list[str] = []
        with contextlib.suppress(ConnectionClosed):
            while True:
                event = await next_event(ws)
                if event["type"] == "error":
                    codes.append(event["error"]["code"])
        close = ws.close_code
    checks.equal("close code", close, 1008)
    checks.that("told why", codes[-1:] == ["policy_violation"], codes)
    return f"error {codes[-1] if codes else 'none'}; close {close}"


def realtime_answered(frame: str, expected: list[str]) -> Run:
    """A request the real API answers without an ``error``: ``expected`` events in order (other
    events between them allowed, an ``error`` never), then the connection goes on."""
    async def run(base: str, recorder: SimulatorRecorder, checks: Checks) -> str:
        async with connect(base + "/v1/realtime?model=minicpm-o", open_timeout=within(5)) as ws:
            checks.equal("first event", (await next_event(ws))["type"], "session.created")
            await ws.send(frame)
            seen: list[dict[str, Any]] = []
            for kind in expected:
                while (event := await next_event(ws))["type"] != kind:
                    seen.append(event)
                    if event["type"] == "error":
                        checks.that("no error", False, event["error"])
                        return f"error {event['error']['code']}"
                seen.append(event)
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))  # and it goes on
            checks.equal("then", (await next_event(ws))["type"], "input_audio_buffer.cleared")
        last = seen[-1]
        detail = (last.get("response") or {}).get("status_details") or {}
        why = (detail.get("error") or {}).get("code")
        return " → ".join(expected) + (f" ({why})" if why else "") + "; goes on"
    return run


async def realtime_session_update_mid_reply(base: str, recorder: SimulatorRecorder, checks: Checks) -> str:
    async with connect(base + "/v1/realtime?model=minicpm-o", open_timeout=within(5)) as ws:
        await next_event(ws)
        turn = tone(440, 1.0, 24_000) + silence(1.4, 24_000)
        for i in range(0, len(turn), 4800):
            await ws.send(append(turn[i:i + 4800]))
        kinds: list[str] = []
        async with asyncio.timeout(within(20)):
            while (event := await next_event(ws))["type"] != "response.output_audio.delta":
                kinds.append(event["type"])
            await ws.send(json.dumps({"type": "session.update", "session": {
                "type": "realtime", "instructions": "Answer in French.",
                "audio": {"output": {"voice": "male"}}}}))
            while (event := await next_event(ws))["type"] != "response.done":
                kinds.append(event["type"])
        status = event["response"]["status"]
    checks.that("no error", "error" not in kinds, kinds)
    checks.that("session.updated", "session.updated" in kinds, kinds)
    checks.equal("reply", status, "completed")
    return f"session.updated; reply {status}"


def _item(content_type: str, role: str = "user", **part: Any) -> str:
    if content_type in ("function_call", "function_call_output"):
        item: dict[str, Any] = {"type": content_type, "call_id": "call_1"}
        item |= {"name": "lookup", "arguments": "{}"} if content_type == "function_call" else {"output": "{}"}
    else:
        item = {"type": "message", "role": role, "content": [{"type": content_type, **part}]}
    return json.dumps({"type": "conversation.item.create", "item": item})


_ITEM_ACK = ["conversation.item.added", "conversation.item.done"]
_SPOKEN = base64.b64encode(tone(440, 0.3, 24_000)).decode()


# -- Twilio -------------------------------------------------------------------------------------

async def twilio_frames(base: str, frames: list[str], checks: Checks, *, end_with_stop: bool = True) -> str:
    """Send ``frames`` raw, then a proper start, a short turn and ``stop``: every outbound frame
    obeys Twilio's rules, and the call ends with 1000."""
    async with connect(base + "/twilio", open_timeout=within(5)) as ws:
        for frame in frames:
            await ws.send(frame)
        received: list[dict[str, Any]] = []

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for frame in ws:
                    received.append(check_outbound(frame, SID))  # Twilio's rules, every frame

        reader = asyncio.create_task(read())
        if end_with_stop:
            await ws.send(inbound_message("stop", SID, 99, stop={"accountSid": "AC" + "0" * 32,
                                                                 "callSid": "CA" + "0" * 32}))
        async with asyncio.timeout(within(10)):
            await reader
        close = ws.close_code
    checks.equal("close code", close, 1000)
    return f"nothing sent to Twilio but media/mark/clear ({len(received)}); close {close}"


def twilio_raw(frames: Callable[[], list[str]]) -> Run:
    async def run(base: str, recorder: SimulatorRecorder, checks: Checks) -> str:
        return await twilio_frames(base, frames(), checks)
    return run


def _start() -> str:
    return inbound_message("start", SID, 1, start=start_body(SID))


def _media(sid: str | None, sequence: int) -> str:
    return inbound_message("media", sid, sequence, media={
        "track": "inbound", "chunk": str(sequence), "timestamp": str(20 * sequence),
        "payload": base64.b64encode(b"\xff" * 160).decode()})


async def twilio_dtmf_mid_reply(base: str, recorder: SimulatorRecorder, checks: Checks) -> str:
    async with TwilioPeer.call(base + "/twilio", stream_sid=SID) as peer:
        # the simulator says back all it heard: a reply of some 9 s. The key goes as the first
        # piece comes, but a starved loop may read it seconds later, and a reply the proxy has
        # sent whole by then has nothing left to clear
        peer.say(tone(660, 6.0, 8_000) + silence(1.4, 8_000))
        await peer.wait_for(lambda p: bool(p.of("media")), timeout_s=15)
        await peer.press("*")
        await peer.wait_for(lambda p: bool(p.of("clear")), timeout_s=5)
        await peer.stop()
        await peer.wait_for(lambda p: p.close_code is not None)
    checks.equal("close code", peer.close_code, 1000)
    return f"clear after the key; close {peer.close_code}"


async def twilio_hang_up_mid_reply(base: str, recorder: SimulatorRecorder, checks: Checks) -> str:
    async with TwilioPeer.call(base + "/twilio", stream_sid=SID) as peer:
        peer.say(tone(660, 1.0, 8_000) + silence(1.4, 8_000))
        await peer.wait_for(lambda p: bool(p.of("media")), timeout_s=15)
    # leaving the block closes the socket mid-reply, with no stop: a hang-up. The model may have
    # finished the reply already (the call plays it at real time): the runner checks that every
    # upstream connection is closed and the accounting balances
    return "socket closed mid-reply; the session ended"


DIALECT_CASES: dict[str, DialectCase] = {
    "realtime malformed_json": DialectCase("error invalid_json; goes on", realtime_error(
        '{"type": "session.update", ', "invalid_json", None)),
    "realtime unknown_event": DialectCase("error invalid_value (type); goes on", realtime_error(
        json.dumps({"type": "response.make", "event_id": "evt_1"}), "invalid_value", "type")),
    "realtime bad_base64": DialectCase("error invalid_value (audio); goes on", realtime_error(
        json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}), "invalid_value", "audio")),
    "realtime wrong_audio_format": DialectCase(
        "error invalid_value (session.audio.input.format.type); goes on", realtime_error(
            json.dumps({"type": "session.update",
                        "session": {"type": "realtime",
                                    "audio": {"input": {"format": {"type": "audio/L16"}}}}}),
            "invalid_value", "session.audio.input.format.type")),
    "realtime oversized_append": DialectCase("error message_too_large; goes on", realtime_error(
        append(bytes(300 * 1024)), "message_too_large", None)),
    "realtime flood": DialectCase("error policy_violation; close 1008", realtime_flood,
                                  {"max_text_frames_per_s": 5.0}),
    "realtime response_create_nothing_to_answer": DialectCase(
        "response.created → response.done (no_user_audio); goes on", realtime_answered(
            json.dumps({"type": "response.create", "response": {"metadata": {"k": "v"}}}),
            ["response.created", "response.done"])),
    **{f"realtime item_create_{name}": DialectCase(
        " → ".join(_ITEM_ACK) + "; goes on", realtime_answered(frame, _ITEM_ACK)) for name, frame in {
        "system_text": _item("input_text", "system", text="Be brief."),
        "user_text": _item("input_text", text="Hello"),
        "user_audio": _item("input_audio", audio=_SPOKEN),
        "assistant_text": _item("output_text", "assistant", text="Hi"),
        "function_call": _item("function_call"),
        "function_call_output": _item("function_call_output"),
    }.items()},
    "realtime session_update_mid_reply": DialectCase("session.updated; reply completed",
                                                     realtime_session_update_mid_reply),
    "twilio media_before_start": DialectCase("nothing sent to Twilio; close 1000", twilio_raw(
        lambda: [inbound_message("connected", None, 0, protocol="Call", version="1.0.0"),
                 _media(SID, 1), _start(), _media(SID, 2)])),
    "twilio malformed_json": DialectCase("nothing sent to Twilio; close 1000", twilio_raw(
        lambda: [inbound_message("connected", None, 0, protocol="Call", version="1.0.0"), _start(),
                 '{"event": "media", '])),
    "twilio wrong_stream_sid": DialectCase("nothing sent to Twilio; close 1000", twilio_raw(
        lambda: [inbound_message("connected", None, 0, protocol="Call", version="1.0.0"), _start(),
                 _media("MZ" + "9" * 32, 2), _media(SID, 3)])),
    "twilio dtmf_mid_reply": DialectCase("clear at once; close 1000", twilio_dtmf_mid_reply),
    "twilio hang_up_mid_reply": DialectCase("session ends, upstream closed, accounting balanced",
                                            twilio_hang_up_mid_reply),
}


async def dialect_input(case: str, server: str) -> Outcome:
    """One client does ``case`` in its dialect while a native client completes a round trip."""
    spec = DIALECT_CASES[case]
    outcome, checks = Outcome(case, server, spec.expected), Checks()

    async def offend(base: str, recorder: SimulatorRecorder) -> str:
        try:
            return await spec.run(base, recorder, checks)
        except Exception as exc:  # the row fails, and says how the proxy saw the sessions end
            checks.failures.append(f"raised {exc!r}")
            return f"raised {exc!r}"

    async with table_simulator(multi_conversation=True) as up, \
            three_dialects(server, up.url, **(spec.config or {})) as (app, base, ended):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(bystander(base + "/", up.sim.recorder, checks))
            offender = tg.create_task(offend(base, up.sim.recorder))
        async with asyncio.timeout(within(10)):
            await app.proxy.wait_idle()
        await upstream_settled(up.sim.recorder, checks)
    unbalanced = [s.summary() for s in ended if not s.balanced]
    checks.that("accounting balanced", not unbalanced, unbalanced)
    checks.equal("sessions ended", len(ended), 2)
    if checks.failures:
        checks.failures.append("the proxy's sessions: " + "; ".join(
            f"{s.session_id}: {s.summary()}" for s in ended))
    outcome.observed = offender.result()
    outcome.failures = checks.failures
    return outcome
