"""WebRTC calls that go wrong, beside a native WebSocket bystander on the same proxy.

One app serves the native protocol at ``/audio_proxy`` and calls at ``/v1/realtime/calls``,
leasing from a real :class:`~asgi_audio_proxy.pool.UpstreamPool` (one multi-conversation
simulator given two slots: the bystander's and the call's), so "the lease is free" is the
pool's own answer. Each case runs one offending aiortc peer (``tests/webrtc/peer.py``) while a
native client completes its round trip (``observe.bystander``); then every session has ended,
the pool leases nothing, the proxy's places are all given back and every ledger balances.

The call's media deadlines are short here (:data:`TIMEOUTS`), so the budget each case is held
to is the deadline that ends it plus one ``close_timeout_s`` for the session's teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
from aiortc import RTCSessionDescription
from starlette.applications import Starlette

from asgi_audio_proxy.edge.calls import WebRTCSettings, add_calls_route
from asgi_audio_proxy.edge.middleware import AudioProxy, AudioProxyMiddleware
from asgi_audio_proxy.pool.pool import UpstreamPool, UpstreamServer
from asgi_audio_proxy.session.stats import SessionStats
from asgi_audio_proxy.simulator.recorder import SimulatorRecorder
from asgi_audio_proxy.webrtc import CallTimeouts
from tests.faults.observe import Checks, Outcome, bystander, table_config, table_simulator, upstream_settled
from tests.http_clients import http_client
from tests.servers import serve
from tests.signals import silence, tone
from tests.timing import within
from tests.webrtc.lossy import relayed_offer
from tests.webrtc.peer import RATE_HZ, Peer, loud

__all__ = ["TIMEOUTS", "WEBRTC_CASES", "webrtc_fault"]

#: a call's media deadlines in these cases: the defaults (10 s, 3 s) cut to what a loopback
#: call needs (ICE and DTLS take ~0.1 s here), so a case shows its end in seconds
TIMEOUTS = CallTimeouts(connect_s=1.5, media_s=1.0)
#: one short turn: a 440 Hz tone, then enough quiet for the model's VAD
UTTERANCE = tone(440, 0.6, RATE_HZ) + silence(0.4, RATE_HZ)


@dataclass
class Rig:
    """The app under test, as a case sees it."""

    base: str  # http://127.0.0.1:PORT
    proxy: AudioProxy
    pool: UpstreamPool
    recorder: SimulatorRecorder
    ended: list[tuple[float, SessionStats]]  # (time.monotonic() at the end, its stats)
    an_end: asyncio.Event  # set as each session ends

    def ended_calls(self) -> list[tuple[float, SessionStats]]:
        """The sessions that were calls (the bystander's is a WebSocket's)."""
        return [(at, s) for at, s in self.ended if s.identity == "http"]

    def call_sessions(self) -> list[SessionStats]:
        return [s.stats for s in self.proxy.sessions.values() if s.stats.identity == "http"]


Run = Callable[[Rig, Checks], Coroutine[Any, Any, str]]


@dataclass(frozen=True)
class WebRTCCase:
    expected: str
    run: Run
    calls: int  # sessions the case's call makes (0: refused before a session)


@contextlib.asynccontextmanager
async def calls_app(server: str, recorder_url: str, recorder: SimulatorRecorder) -> AsyncIterator[Rig]:
    ended: list[tuple[float, SessionStats]] = []
    an_end = asyncio.Event()

    def on_end(stats: SessionStats) -> None:
        ended.append((time.monotonic(), stats))
        an_end.set()

    config = table_config(recorder_url, chunk_duration=0.2, max_queue=0)
    pool = UpstreamPool([UpstreamServer(recorder_url, slots=2)], max_queue=0)
    # each session's identity is its scope's type: a call's is "http" (its POST), the bystander's not
    app = AudioProxyMiddleware(Starlette(), path="/audio_proxy", config=config, leaser=pool,
                               authenticate=lambda scope: scope["type"],
                               on_session_end=on_end)
    add_calls_route(app, "/v1/realtime", WebRTCSettings(timeouts=TIMEOUTS))
    try:
        async with serve(server, app) as port:
            yield Rig(f"http://127.0.0.1:{port}", app.proxy, pool, recorder, ended, an_end)
    finally:
        await app.proxy.aclose()
        await pool.aclose()


async def _post(base: str, body: bytes | str) -> httpx.Response:
    async with http_client() as http:
        return await http.post(f"{base}/v1/realtime/calls", content=body,
                               headers={"Content-Type": "application/sdp"})


def _refused(status: int, code: str, param: str | None) -> Callable[[httpx.Response, Checks], str]:
    def check(response: httpx.Response, checks: Checks) -> str:
        error = response.json().get("error", {}) if response.status_code >= 400 else {}
        got = (response.status_code, error.get("type"), error.get("code"), error.get("param"))
        checks.equal("answer", got, (status, "invalid_request_error", code, param))
        return f"{response.status_code} {error.get('code')}"
    return check


#: an audio section without ICE credentials: it passes our checks, and aiortc refuses it
_NO_ICE = "\r\n".join(["v=0", "o=- 1 2 IN IP4 0.0.0.0", "s=-", "t=0 0", "m=audio 9 UDP/TLS/RTP/SAVPF 111",
                        "a=fingerprint:sha-256 AA:BB", "a=rtpmap:111 opus/48000/2", ""])


async def malformed_offer(rig: Rig, checks: Checks) -> str:
    """Not SDP; a browser's offer without its DTLS fingerprint; one aiortc cannot answer (no
    ICE credentials, refused once a place and a peer connection were made for it): each a 400
    ``invalid_offer``, and none leaves a session behind."""
    p = Peer()
    try:
        unsigned = "\r\n".join(line for line in (await p.offer()).splitlines()
                                if not line.startswith("a=fingerprint:"))
    finally:
        await p.close()
    answers = [_refused(400, "invalid_offer", "sdp")(await _post(rig.base, body), checks)
               for body in (b"hello", unsigned, _NO_ICE)]
    checks.equal("call sessions", rig.call_sessions(), [])
    return f"{len(answers)} times " + " ".join(sorted(set(answers)))


async def no_audio_track(rig: Rig, checks: Checks) -> str:
    p = Peer(audio=False)  # a data channel and nothing else
    try:
        observed = _refused(400, "missing_audio", "sdp")(await p.call(rig.base), checks)
    finally:
        await p.close()
    checks.equal("call sessions", rig.call_sessions(), [])
    return observed


async def _ends_within(rig: Rig, since: float, budget_s: float, checks: Checks, what: str) -> str:
    """Wait for the call's session to end; it must within ``budget_s`` of ``since``."""
    try:
        async with asyncio.timeout(within(budget_s + 5)):
            while not rig.ended_calls():
                rig.an_end.clear()
                await rig.an_end.wait()
    except TimeoutError:
        checks.failures.append(f"the call never ended: {len(rig.call_sessions())} live")
        return "never ended"
    [(at, stats)] = rig.ended_calls()
    took_s = at - since
    checks.that(f"ended within {within(budget_s):.1f} s of {what}", took_s < within(budget_s),
                f"{took_s:.2f} s")
    return f"close {stats.close_code} {took_s:.2f} s after {what}"


async def _stage(what: str, awaited: Awaitable[Any], timeout_s: float | None = None) -> None:
    """Await one step of a case; a step that runs out of time says which it was."""
    try:
        if timeout_s is None:
            await awaited
        else:
            async with asyncio.timeout(within(timeout_s)):
                await awaited
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def other_channel(rig: Rig, checks: Checks) -> str:
    """A channel named ``events``: closed by the proxy; the call goes on, audio only, until the
    peer hangs up (a DTLS close: at once, so the budget is the teardown's)."""
    p = Peer(channel="events")
    closed = asyncio.Event()
    assert p.channel is not None
    p.channel.on("close", closed.set)
    try:
        response = await p.call(rig.base)
        checks.equal("answer", response.status_code, 201)
        # ICE, DTLS and SCTP before the proxy sees the channel: seconds on a crowded machine
        await _stage("the channel closed by the proxy", closed.wait(), 15)
        # there is no channel to say session.created on: speak once the model server hears the call
        await _stage("the model server hearing the call", p.wait_until(
            lambda: any(s.sent_bytes > 24_000 for s in rig.call_sessions()), timeout_s=15))
        p.mic.say(UTTERANCE)
        await _stage("the reply on the track", p.wait_until(lambda: loud(p.audio_since(0)), timeout_s=15))
    finally:
        hung_up_at = time.monotonic()
        await p.close()
    ended = await _ends_within(rig, hung_up_at, rig.proxy.config.close_timeout_s, checks, "the hang-up")
    return f"channel closed, reply heard on the track; {ended}"


async def ice_never_completes(rig: Rig, checks: Checks) -> str:
    """Answered, then silence: the peer never takes the answer, so no connectivity check is
    ever answered. The call's connect deadline ends it."""
    p = Peer()
    try:
        response = await p.call(rig.base, answer=False)
        answered_at = time.monotonic()
        checks.equal("answer", response.status_code, 201)
        budget_s = TIMEOUTS.connect_s + rig.proxy.config.close_timeout_s
        return "201; " + await _ends_within(rig, answered_at, budget_s, checks, "the answer")
    finally:
        await p.close()


async def tab_killed_mid_reply(rig: Rig, checks: Checks) -> str:
    """The call runs through a UDP relay; mid-reply the relay drops everything both ways from
    then on, as a killed tab's network does: no RTP, no RTCP, no close. The media deadline ends
    the call, and the model server is told to stop the reply it was still sending."""
    p = Peer()
    # both sides know each other only through the relay: no path around it survives the kill
    offer, relay = await relayed_offer(await p.offer(), loss=0.0, jitter_s=0.0)
    try:
        response = await _post(rig.base, offer)
        checks.equal("answer", response.status_code, 201)
        await p.pc.setRemoteDescription(RTCSessionDescription(relay.take_answer(response.text), "answer"))
        await p.wait_for("session.created")
        await p.wait_until(lambda: len(p.heard) > 5, what="media flowing")  # both ways
        p.mic.say(UTTERANCE)
        await p.wait_for("output_audio_buffer.started", timeout_s=15)
        started = p.heard[-1][0] if p.heard else 0.0
        # the reply is heard (not "is loud now": a test process starved for a moment would see
        # the reply's end and wait for a loudness that had passed)
        await p.wait_until(lambda: loud(p.audio_since(started)), what="the reply heard")
        relay.loss = 1.0  # the tab is gone
        killed_at = time.monotonic()
        budget_s = TIMEOUTS.media_s + rig.proxy.config.close_timeout_s
        ended = await _ends_within(rig, killed_at, budget_s, checks, "the kill")
    finally:
        relay.close()
        await p.close()
    checks.that("model server told to stop the reply", rig.recorder.stops >= 1, rig.recorder.stops)
    return f"{ended}; {rig.recorder.stops} stop"


WEBRTC_CASES: dict[str, WebRTCCase] = {
    "malformed_offer": WebRTCCase("3 times 400 invalid_offer (sdp); no session", malformed_offer, 0),
    "no_audio_track": WebRTCCase("400 missing_audio (sdp); no session", no_audio_track, 0),
    "other_channel_name": WebRTCCase(
        "channel closed, reply on the track; ends ≤ close_timeout_s after the hang-up", other_channel, 1),
    "ice_never_completes": WebRTCCase(
        "201; close 1006 ≤ connect_s + close_timeout_s after the answer", ice_never_completes, 1),
    "tab_killed_mid_reply": WebRTCCase(
        "close 1006 ≤ media_s + close_timeout_s after the kill; model told to stop",
        tab_killed_mid_reply, 1),
}


async def webrtc_fault(case: str, server: str) -> Outcome:
    """One call does ``case`` while a native client completes a round trip on the same proxy."""
    spec = WEBRTC_CASES[case]
    outcome, checks = Outcome(f"webrtc {case}", server, spec.expected), Checks()
    # slow reply chunks: the killed tab's reply is still coming from the model server; for that
    # row a reply of 7 s, so that it is, however late a starved test process acts on its start
    chunks = 16 if case == "tab_killed_mid_reply" else 6
    async with table_simulator(multi_conversation=True, chunk_delay_s=0.45, reply_chunks=chunks) as up, \
            calls_app(server, up.url, up.sim.recorder) as rig:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(bystander(rig.base.replace("http", "ws") + "/audio_proxy", up.sim.recorder,
                                     checks, 12 + chunks * 0.45))
            offender = tg.create_task(spec.run(rig, checks))
        async with asyncio.timeout(within(10)):
            await rig.proxy.wait_idle()
        await upstream_settled(up.sim.recorder, checks)
        checks.equal("leases held by the pool", rig.pool.leased, frozenset())
        checks.that("the pool would not queue", not await rig.pool.would_wait())
    checks.equal("places taken", rig.proxy._admitted, 0)
    checks.equal("sessions ended (the bystander's and the call's)", len(rig.ended), 1 + spec.calls)
    unbalanced = [s.summary() for _, s in rig.ended if not s.balanced]
    checks.that("accounting balanced", not unbalanced, unbalanced)
    outcome.observed = offender.result()
    outcome.failures = checks.failures
    return outcome
