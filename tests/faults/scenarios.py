"""The fault scenarios: plain async functions, each returning an :class:`Outcome`.

:mod:`tests.faults.table` lists them, for ``python -m tests.faults`` (which prints them as a
table) and the pytest files (which assert that each held). Every scenario runs on its own
simulator and proxy, so the scenarios of a group can run at once.

- :func:`upstream_fault`: the simulator misbehaves one way; the client must get the precise
  error event and close code, the upstream a ``/stop`` where a reply was playing, and nothing
  may stay open.
- :func:`bad_input` (cases in :mod:`tests.faults.client_cases`): one client misbehaves; it gets
  the documented answer while a second client's round trip still checks out.
- :func:`admission`: refusals on the handshake, before accept (an overloaded proxy's too).
- :func:`upstream_silent`: a model server that accepts the connection and never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.edge.admission import TokenAuth
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.simulator.app import FAULTS, Fault
from tests.faults.client_cases import CLIENT_CASES
from tests.faults.observe import (
    UTTERANCE,
    Checks,
    Outcome,
    bystander,
    proxy_on,
    read_to_close,
    table_simulator,
    upstream_settled,
)
from tests.faults.silent import silent_upstream
from tests.timing import within

__all__ = ["ADMISSION_CASES", "CLIENT_CASES", "FAULTS", "SERVERS", "UPSTREAM_FAULTS", "admission",
           "admission_fallback", "bad_input", "noticed_within_s", "upstream_fault", "upstream_silent"]

SERVERS = ("uvicorn", "hypercorn")


@dataclass(frozen=True)
class Expected:
    """What the client gets for one upstream fault.

    ``provoke``: the one setting the fault needs short to show in a short scenario; every other
    limit keeps its default. Each waits on something that never comes (a stalled stream stays
    stalled, a skipping upstream keeps skipping), so no load makes it fire for another fault.
    """

    error: str
    code: int
    stop: bool  # a reply was playing, so the upstream must be told to stop
    provoke: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.error} {self.code}; " + ("stop sent" if self.stop else "no reply, no stop")


UPSTREAM_FAULTS: dict[Fault, Expected] = {
    "refuse": Expected("upstream_unavailable", 1011, stop=False),
    "die_mid_turn": Expected("upstream_unavailable", 1011, stop=True),
    "stall_sse": Expected("upstream_timeout", 1011, stop=True, provoke={"reply_stall_timeout_s": 0.5}),
    "malformed_sse": Expected("upstream_protocol_error", 1014, stop=True),
    "malformed_json": Expected("upstream_protocol_error", 1014, stop=True),
    "error_event": Expected("upstream_error", 1011, stop=False),
    "ack_error": Expected("upstream_protocol_error", 1014, stop=False),
    "ws_close_1011": Expected("upstream_unavailable", 1011, stop=False),
    "skip_forever": Expected("upstream_error", 1011, stop=False, provoke={"max_skipped_s": 1.0}),
}
assert set(UPSTREAM_FAULTS) == set(FAULTS), "a fault mode without an expected outcome"


def noticed_within_s(fault: Fault, config: ProxyConfig) -> float:
    """How long after the upstream's fault the client may learn of it, by the proxy's settings.

    What the upstream shows (a dropped connection, a bad line, an error) is noticed at once; a
    stalled reply after ``reply_stall_timeout_s``; a skipping upstream once ``max_skipped_s`` of
    audio went unheard. Then the teardown, each step of which ``close_timeout_s`` bounds: done
    promptly it takes a fraction of one, so one is its budget; past it, a step ran to its deadline.
    """
    noticing = {"stall_sse": config.reply_stall_timeout_s, "skip_forever": config.max_skipped_s}
    return noticing.get(fault, 0.0) + config.close_timeout_s


async def upstream_fault(fault: Fault, server: str) -> Outcome:
    """The client streams one utterance while the upstream fails in the way ``fault`` names."""
    expected = UPSTREAM_FAULTS[fault]
    outcome, checks = Outcome(f"upstream {fault}", server, str(expected)), Checks()
    # slow chunks: the reply is still playing when die_mid_turn strikes at its second chunk
    async with table_simulator(fault=fault, chunk_delay_s=0.2, reply_chunks=4) as up, \
            proxy_on(server, up.url, chunk_duration=0.2, **expected.provoke) as proxy:
        async with connect(proxy.url, open_timeout=within(5)) as ws:
            async def speak() -> None:
                with contextlib.suppress(ConnectionClosed):  # the proxy may close first
                    for i in range(0, len(UTTERANCE), 640):  # at once: the proxy paces it
                        await ws.send(UTTERANCE[i:i + 640])

            speaker = asyncio.create_task(speak())
            transcript = await read_to_close(ws, timeout_s=8)
            await speaker
        await proxy.idle()
        await upstream_settled(up.sim.recorder, checks)
        stops, struck = up.sim.recorder.stops, up.sim.recorder.fault_at
    errors = transcript.errors
    checks.equal("error events", errors, [(expected.error, expected.code)])
    checks.equal("close code", transcript.close_code, expected.code)
    checks.equal("upstream told to stop", stops >= 1, expected.stop)
    budget_s = within(noticed_within_s(fault, proxy.proxy.config))
    took_s = (transcript.closed_at or time.monotonic()) - struck if struck is not None else None
    checks.that(f"closed within {budget_s:.1f} s of the fault", took_s is not None and took_s < budget_s,
                "the fault never struck" if took_s is None else f"{took_s:.2f} s")
    checks.that("accounting balanced", not proxy.unbalanced(), proxy.unbalanced())
    if fault == "die_mid_turn":
        checks.that("reply audio was playing", transcript.audio_bytes > 0)
    outcome.observed = (f"{transcript.describe()}; " + (f"{stops} stop" if stops else "no stop")
                        + ("" if took_s is None else f"; closed {took_s:.2f} s after the fault"))
    outcome.failures = checks.failures
    return outcome


#: the connect timeout the silent-upstream row runs with: the session's own deadline is three
SILENT_CONNECT_TIMEOUT_S = 0.3


async def upstream_silent(server: str) -> Outcome:
    """The model server accepts the connection and never answers: the session must name it
    (``upstream_timeout``), within the session's connect deadline, never as an internal error."""
    outcome = Outcome("upstream never answers", server, "upstream_timeout 1011; no reply, no stop")
    checks = Checks()
    async with silent_upstream() as url, \
            proxy_on(server, url, many=True, chunk_duration=0.2,
                     connect_timeout_s=SILENT_CONNECT_TIMEOUT_S) as proxy:
        opened_at = time.monotonic()
        async with connect(proxy.url, open_timeout=within(5)) as ws:
            transcript = await read_to_close(ws, timeout_s=8)
        await proxy.idle()
    checks.equal("error events", transcript.errors, [("upstream_timeout", 1011)])
    checks.equal("close code", transcript.close_code, 1011)
    budget_s = within(3 * SILENT_CONNECT_TIMEOUT_S + proxy.proxy.config.close_timeout_s)
    took_s = (transcript.closed_at or time.monotonic()) - opened_at
    checks.that(f"closed within {budget_s:.1f} s of the handshake", took_s < budget_s, f"{took_s:.2f} s")
    checks.that("accounting balanced", not proxy.unbalanced(), proxy.unbalanced())
    outcome.observed = f"{transcript.describe()}; closed {took_s:.2f} s after the handshake"
    outcome.failures = checks.failures
    return outcome


async def bad_input(case: str, server: str) -> Outcome:
    """One client does ``case`` while a second client completes a round trip on the same proxy."""
    spec = CLIENT_CASES[case]
    outcome, checks = Outcome(f"client {case}", server, spec.expected), Checks()
    async with table_simulator(multi_conversation=True, **spec.simulator) as up, \
            proxy_on(server, up.url, many=True, chunk_duration=0.2, **spec.config) as proxy:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(bystander(proxy.url, up.sim.recorder, checks))
            offender = tg.create_task(spec.run(proxy.url, up.sim.recorder, server, checks))
        await proxy.idle()
        await upstream_settled(up.sim.recorder, checks)
    checks.that("accounting balanced", not proxy.unbalanced(), proxy.unbalanced())
    outcome.observed = offender.result()
    outcome.failures = checks.failures
    return outcome


# -- admission -------------------------------------------------------------------------------------

ADMISSION_CASES = {
    "wrong_token": "401 before accept",
    "foreign_origin": "403 before accept",
    "full_house": "503 + Retry-After before accept",
    "per_client_limit": "429 + Retry-After before accept",
    "overloaded": "503 + Retry-After before accept; the admitted session goes on",
}
#: the cases where one admitted session holds a place (or is the bystander) while the next is refused
_HOLDING = ("full_house", "per_client_limit", "overloaded")


def _overload(proxy: AudioProxy) -> None:
    """The loop-lag monitor told of a one-second stall, as a saturated loop reports it (a real
    stall would hold up every scenario running beside this one)."""
    assert proxy.load is not None, "max_loop_lag_s is set for the overloaded case"
    proxy.load.gauge.record(1.0, 1.0)


async def admission(case: str, server: str) -> Outcome:
    """A refused handshake gets its HTTP status; its audio never reaches the upstream."""
    outcome, checks = Outcome(f"admission {case}", server, ADMISSION_CASES[case]), Checks()
    config: dict[str, object] = {"chunk_duration": 0.2, "retry_after_s": 7,
                                 "allowed_origins": ("https://app.example", "https://*.example.org")}
    if case == "full_house":
        config["max_sessions"] = 1
    if case == "per_client_limit":
        config["max_sessions_per_client"] = 1
    if case == "overloaded":
        config["max_loop_lag_s"] = 0.1
    tokens = TokenAuth({"good": "alice"})
    headers = {"Authorization": "Bearer good", "Origin": "https://a.example.org"}
    refused_headers = dict(headers)
    if case == "wrong_token":
        refused_headers["Authorization"] = "Bearer bad"
    if case == "foreign_origin":
        refused_headers["Origin"] = "https://evil.example"
    async with table_simulator(multi_conversation=True) as up, \
            proxy_on(server, up.url, authenticate=tokens, many=True, **config) as proxy:
        async with contextlib.AsyncExitStack() as holders:
            if case in _HOLDING:  # one admitted session holds the place
                holder = await holders.enter_async_context(
                    connect(proxy.url, additional_headers=headers, open_timeout=within(5)))
                await holder.recv()  # ready
            if case == "overloaded":
                _overload(proxy.proxy)
            status, retry_after = None, None
            try:
                async with connect(proxy.url, additional_headers=refused_headers,
                                   open_timeout=within(5)) as ws:
                    await ws.send(UTTERANCE[:3200])  # never happens if refused
                    await read_to_close(ws, timeout_s=2)
            except InvalidStatus as refused:
                status = refused.response.status_code
                retry_after = refused.response.headers.get("Retry-After")
            sessions_while_refused = len(proxy.proxy.sessions)
        await proxy.idle()
    codes = {"wrong_token": 401, "foreign_origin": 403, "full_house": 503, "per_client_limit": 429,
             "overloaded": 503}
    checks.equal("HTTP status", status, codes[case])
    checks.equal("Retry-After", retry_after, "7" if codes[case] in (429, 503) else None)
    holding = 1 if case in _HOLDING else 0
    checks.equal("sessions live while refusing (never accepted)", sessions_while_refused, holding)
    checks.equal("sessions that ended (the refused one never started)", len(proxy.ended), holding)
    checks.equal("upstream heard the refused client", sum(map(len, up.sim.recorder.chunks.values())), 0)
    outcome.observed = f"{status}" + (f" + Retry-After {retry_after}" if retry_after else "")
    outcome.failures = checks.failures
    return outcome


async def admission_fallback(case: str) -> Outcome:
    """The same refusals where the server offers no denial response: a close before accept.

    The refused connection is a hand-written ASGI call with no ``websocket.http.response``
    extension, made on the same :class:`AudioProxy` a real server serves the holder on.
    """
    codes = {"wrong_token": 1008, "foreign_origin": 1008, "full_house": 1013, "per_client_limit": 1013,
             "overloaded": 1013}
    outcome, checks = Outcome(f"admission {case}", "no denial ext.",
                              f"close {codes[case]} before accept"), Checks()
    config: dict[str, object] = {"chunk_duration": 0.2, "allowed_origins": ("https://app.example",)}
    if case == "full_house":
        config["max_sessions"] = 1
    if case == "per_client_limit":
        config["max_sessions_per_client"] = 1
    if case == "overloaded":
        config["max_loop_lag_s"] = 0.1
    headers = {"Authorization": "Bearer good", "Origin": "https://app.example"}
    refused = {k.lower().encode(): v.encode() for k, v in headers.items()}
    if case == "wrong_token":
        refused[b"authorization"] = b"Bearer bad"
    if case == "foreign_origin":
        refused[b"origin"] = b"https://evil.example"
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "scheme": "ws", "path": "/", "raw_path": b"/", "root_path": "", "query_string": b"",
             "headers": list(refused.items()), "client": ("127.0.0.1", 50_000),
             "server": ("127.0.0.1", 80), "subprotocols": [], "extensions": {}}
    async with table_simulator(multi_conversation=True) as up, \
            proxy_on("uvicorn", up.url, authenticate=TokenAuth({"good": "alice"}), many=True,
                     **config) as proxy:
        async with contextlib.AsyncExitStack() as holders:
            if case in _HOLDING:
                holder = await holders.enter_async_context(
                    connect(proxy.url, additional_headers=headers, open_timeout=within(5)))
                await holder.recv()  # ready
            if case == "overloaded":
                _overload(proxy.proxy)
            async with asyncio.timeout(within(5)):
                await proxy.proxy(scope, receive, send)  # type: ignore[arg-type]
        await proxy.idle()
    checks.equal("what the app sent", [(m["type"], m.get("code")) for m in sent],
                 [("websocket.close", codes[case])])
    checks.equal("upstream heard the refused client", sum(map(len, up.sim.recorder.chunks.values())), 0)
    outcome.observed = ", ".join(f"{m['type']} {m.get('code', '')}".strip() for m in sent)
    outcome.failures = checks.failures
    return outcome
