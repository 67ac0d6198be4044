"""The simulator's fault modes (for the reliability suite) and its many-conversations load mode."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from asgi_audio_proxy.simulator.app import FAULTS, UpstreamSimulator
from asgi_audio_proxy.simulator.recorder import SimulatorRecorder
from asgi_audio_proxy.upstreams.minicpm import wire
from tests.simulator_wire import (
    SPEECH,
    frame,
    open_completions,
    pieces,
    read_body,
    running,
    speak,
    sse_messages,
)
from tests.timing import FakeClock, within

#: what the upstream answers, on every route, while it is busy with another conversation
BUSY = b'{"detail":"Server busy, please try again later"}'


async def refused_completions(client: httpx.AsyncClient) -> bytes:
    """``POST /api/v1/completions`` when it is expected not to stream: its status and body."""
    response = await client.post("/api/v1/completions", headers={"uid": "F"}, json=wire.COMPLETIONS_BODY)
    return b"%d %s" % (response.status_code, response.content)


async def run_faulty_turn(fault: Any) -> tuple[UpstreamSimulator, list[str], bytes | BaseException]:
    clock = FakeClock()
    sim = UpstreamSimulator(clock=clock, reply_chunks=3, fault=fault)
    reasons: list[str] = []
    parts: asyncio.Queue[bytes] = asyncio.Queue()
    outcome: bytes | BaseException = b""
    async with running(sim) as (client, ws_base):
        task = asyncio.create_task(
            refused_completions(client) if fault == "refuse" else read_body(client, "F", parts))
        try:
            async with connect(f"{ws_base}/ws/stream?uid=F") as ws:
                await sim.recorder.wait_for(lambda r: r.completions_uids or task.done(), timeout=within(5))
                reasons = await speak(ws, SPEECH, "F", clock)
                if fault == "die_mid_turn":
                    await ws.recv()
        except websockets.InvalidStatus as exc:  # a refused handshake: what it answered, exactly
            reasons.append(f"InvalidStatus {exc.response.status_code} {exc.response.body.decode()}")
        except websockets.ConnectionClosed as exc:
            reasons.append(type(exc).__name__)
        if fault == "stall_sse":  # the echo comes; then, a while later, still nothing more
            received = b""
            async with asyncio.timeout(within(5)):
                while not received.endswith(b"\n\n"):
                    received += await parts.get()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    received += await parts.get()
            outcome = received
        elif fault in ("ack_error", "ws_close_1011", "skip_forever"):
            pass  # no turn can end: the body stays empty
        else:
            try:
                async with asyncio.timeout(within(5)):
                    outcome = await task
            except (httpx.HTTPError, AssertionError) as exc:
                outcome = exc
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    return sim, reasons, outcome


@pytest.mark.parametrize("fault", FAULTS)
async def test_fault_modes_do_what_their_names_say(fault: Any) -> None:
    sim, reasons, outcome = await run_faulty_turn(fault)
    assert sim.recorder.fault_at is not None, "when it struck: what a test times the proxy from"
    head = b"event: message\ndata: {"
    if fault == "refuse":
        assert reasons == [f"InvalidStatus 503 {BUSY.decode()}"]
        assert outcome == b"503 " + BUSY
    elif fault == "die_mid_turn":
        assert reasons[-1] == "ConnectionClosedError" and isinstance(outcome, httpx.RemoteProtocolError)
    elif fault == "stall_sse":
        assert isinstance(outcome, bytes) and outcome.startswith(head) and outcome.count(b"data:") == 1
        assert not sim.recorder.replies
    elif fault == "malformed_sse":
        assert isinstance(outcome, bytes) and outcome.startswith(head)
        assert outcome.endswith(b"\n\ndata: {not json\n\n")
    elif fault == "malformed_json":
        assert isinstance(outcome, bytes) and outcome.endswith(b'\n\ndata: {"choices": "x"}\n\n')
    elif fault == "error_event":
        assert outcome == b'event: message\ndata:{"error": "name \'exc\' is not defined"}\n\n'
    elif fault == "ack_error":
        assert set(reasons) == {"Invalid request format"}
    elif fault == "ws_close_1011":
        assert reasons == ["ConnectionClosedError"] and sim.recorder.errors
    elif fault == "skip_forever":
        assert set(reasons) == {"skip"} and not sim.recorder.chunks


async def test_fault_can_be_changed_at_run_time() -> None:
    sim = UpstreamSimulator(fault="refuse")
    async with running(sim) as (client, _):
        refused = await client.post("/init_options", headers={"uid": "X"}, json={})
        assert (refused.status_code, refused.content) == (503, BUSY)
        sim.fault = None
        assert (await client.post("/init_options", headers={"uid": "X"}, json={})).status_code == 400


async def test_multi_conversation_keeps_state_per_uid_and_records_arrivals() -> None:
    clock = FakeClock()
    sim = UpstreamSimulator(clock=clock, reply_chunks=1, multi_conversation=True)
    async with running(sim) as (client, ws_base):
        bodies = [await open_completions(sim, client, uid) for uid in ("M1", "M2")]
        async with connect(f"{ws_base}/ws/stream?uid=M1") as one, \
                connect(f"{ws_base}/ws/stream?uid=M2") as two:
            for piece in pieces(SPEECH):
                clock.now += 0.2
                await one.send(frame(piece, "M1"))
                await two.send(frame(piece, "M2"))
                assert "error" not in json.loads(await one.recv()) | json.loads(await two.recv())
        async with asyncio.timeout(within(5)):
            replies = [sse_messages(await body) for body in bodies]
    assert [{m["id"] for m in r} for r in replies] == [{"M1"}, {"M2"}]
    assert [len(sim.recorder.arrivals[uid]) for uid in ("M1", "M2")] == [11, 11]


def test_unused_names_are_gone() -> None:
    # nothing in the package, the tests, the benchmarks or the demo read them: the simulator is
    # itself the ASGI app, acks are read from ``recorder.acks``, and replies parse their own reasons
    assert not hasattr(UpstreamSimulator, "app")
    assert not hasattr(SimulatorRecorder, "ack_reasons")
    assert not hasattr(wire, "AckReason")
