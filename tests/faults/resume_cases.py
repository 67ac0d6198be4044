"""The fault table's ``resume`` group: a connection cut under a session (a TCP relay drops both
sockets, no close frame), then the client back with its token, or not; in the native protocol,
and in the Realtime dialect (``?resumable=1``, and a stock client that did not ask).

Each case plays on its own simulator and proxy (uvicorn, where a close can be told from a cut;
under hypercorn no session is held: ``tests/test_resume_live.py``) and returns what it saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import connect

from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    ErrorMessage,
    ReadyMessage,
    ResumedMessage,
    TurnEndMessage,
)
from tests.clients import arrive
from tests.dialects.realtime_support import GA_EVENTS
from tests.faults.observe import Checks, Outcome
from tests.signals import silence, tone
from tests.test_resume_live import proxied
from tests.test_resume_realtime import LAST_READ, next_event, read_reply, realtime_proxied, speak
from tests.timing import within

__all__ = ["RESUME_CASES", "resume_case"]

SPEECH = tone(440.0, 1.0) + silence(1.0)


async def cut_speaking(checks: Checks) -> str:
    async with proxied() as (up, proxy, relay, ended):
        client, ready = await arrive(f"ws://127.0.0.1:{relay.port}/")
        checks.that("ready with a token", isinstance(ready, ReadyMessage) and bool(ready.resume_token))
        assert isinstance(ready, ReadyMessage)
        await client.send_paced(SPEECH[:16_000])
        relay.cut()
        again, resumed = await arrive(f"ws://127.0.0.1:{relay.port}/?resume={ready.resume_token}")
        checks.that("resumed", isinstance(resumed, ResumedMessage), resumed)
        turn = await again.say(SPEECH[16_000:])
        checks.equal("the turn's reply", turn.ending, TurnEndMessage("complete"))
        await again.__aexit__()
        await proxy.wait_idle()
    record = up.sim.recorder
    checks.equal("conversations upstream (init_options, uids)",
                 (len(record.options), len(set(record.completions_uids))), (1, 1))
    return f"resumed; reply {len(turn.audio)} B; one conversation upstream; {ended[0].resumes} resume"


async def cut_mid_reply(checks: Checks) -> str:
    async with proxied(chunk_delay_s=0.2) as (_up, proxy, relay, ended):
        client, ready = await arrive(f"ws://127.0.0.1:{relay.port}/")
        assert isinstance(ready, ReadyMessage)
        await client.send_paced(SPEECH)
        got = 0
        while not got:
            _, message = await client.next_frame()
            got = len(message.pcm) if isinstance(message, AudioMessage) else 0
        relay.cut()
        again, resumed = await arrive(f"ws://127.0.0.1:{relay.port}/?resume={ready.resume_token}")
        checks.that("resumed", isinstance(resumed, ResumedMessage), resumed)
        rest = await again.read_turn()
        checks.that("the rest of the reply after resumed", bool(rest.audio))
        await again.__aexit__()
        await proxy.wait_idle()
    checks.equal("reply audio received", got + len(rest.audio), ended[0].reply_audio_bytes)
    return f"{got} B before the cut, {len(rest.audio)} B after resumed; all of it"


async def queued_during_grace(checks: Checks) -> str:
    async with proxied(grace_s=0.5) as (_up, proxy, relay, ended):
        _, _ready = await arrive(f"ws://127.0.0.1:{relay.port}/")
        relay.cut()
        second, first = await arrive(f"ws://127.0.0.1:{relay.port}/")
        held = not isinstance(first, ReadyMessage)
        checks.that("the second client waits while the session is held", held, first)
        if held:
            await second.queued_then_ready(timeout_s=5)
        await second.__aexit__()
        await proxy.wait_idle()
    checks.that("the grace ended the first", bool(ended) and ended[0].end_reason.startswith("not resumed"))
    return "queued during the grace; served when it ended"


async def refused_tokens(checks: Checks) -> str:
    async with proxied(grace_s=0.5) as (up, proxy, relay, _ended):
        _, ready = await arrive(f"ws://127.0.0.1:{relay.port}/")
        assert isinstance(ready, ReadyMessage)

        async def refused(token: str, what: str) -> None:
            client, message = await arrive(f"ws://127.0.0.1:{relay.port}/?resume={token}")
            async with asyncio.timeout(within(5)):
                await client.conn.wait_closed()
            checks.equal(f"{what} token", (getattr(message, "kind", message), client.conn.close_code),
                         ("resume_failed", 1008))
            checks.that(f"{what}: an error event", isinstance(message, ErrorMessage))

        await refused("wrong", "wrong")
        relay.cut()
        _, resumed = await arrive(f"ws://127.0.0.1:{relay.port}/?resume={ready.resume_token}")
        assert isinstance(resumed, ResumedMessage)
        await refused(ready.resume_token or "", "reused")
        relay.cut()
        await proxy.wait_idle()
        await refused(resumed.resume_token, "expired")
    checks.equal("upstream connections", up.sim.recorder.ws_opened, 1)
    return "wrong, reused, expired: resume_failed 1008; nothing upstream touched"


async def realtime_cut_mid_reply(checks: Checks) -> str:
    async with realtime_proxied(chunk_delay_s=0.2) as (up, proxy, relay, ended):
        url = f"ws://127.0.0.1:{relay.port}/v1/realtime"
        ws = await connect(f"{url}?resumable=1")
        created, ready = await next_event(ws), await next_event(ws)
        await speak(ws)
        audio = bytearray()
        await read_reply(ws, audio, until_audio=True)
        before = len(audio)
        relay.cut()
        ws.transport.abort()
        resume = f"resume={ready['resume_token']}&last_event_id={LAST_READ.pop(ws)}"
        async with connect(f"{url}?{resume}") as again:
            resumed = await next_event(again)
            checks.equal("session.resumed, same session",
                         (resumed["type"], resumed.get("session", {}).get("id")),
                         ("session.resumed", created["session"]["id"]))
            await read_reply(again, audio)
        async with asyncio.timeout(within(5)):
            await proxy.wait_idle()
    [stats] = ended
    checks.equal("reply audio received", len(audio), stats.reply_audio_bytes)
    checks.that("the ledger balanced", stats.balanced, stats.summary())
    checks.equal("conversations upstream", up.sim.recorder.ws_opened, 1)
    return f"{before} B before the cut, {len(audio) - before} B after session.resumed; all of it"


async def realtime_refused(checks: Checks) -> str:
    async with realtime_proxied(grace_s=0.5) as (up, _proxy, relay, _ended):
        async with connect(f"ws://127.0.0.1:{relay.port}/v1/realtime?resume=nobody.x") as ws:
            error = await next_event(ws)
            async with asyncio.timeout(within(5)):
                await ws.wait_closed()
        GA_EVENTS.validate_python(error, strict=True)
        checks.equal("error code, close code", (error["error"]["code"], ws.close_code),
                     ("resume_failed", 1008))
        checks.equal("upstream connections", up.sim.recorder.ws_opened, 0)
    return "an error event (resume_failed) in OpenAI's shape, then 1008; nothing upstream"


async def realtime_stock_cut(checks: Checks) -> str:
    async with realtime_proxied() as (up, proxy, relay, ended):
        ws = await connect(f"ws://127.0.0.1:{relay.port}/v1/realtime")
        created = await next_event(ws)
        GA_EVENTS.validate_python(created, strict=True)
        relay.cut()
        ws.transport.abort()
        async with asyncio.timeout(within(5)):
            await proxy.wait_idle()  # not held: no grace to wait out
        await up.sim.recorder.wait_for(lambda r: r.ws_closed == r.ws_opened, timeout=within(5))
    checks.equal("resumes, tokens", (ended[0].resumes, len(proxy.resume_tokens)), (0, 0))
    return "session.created alone (no extension event); the cut ended the session at once"


RESUME_CASES: dict[str, tuple[str, Callable[[Checks], Awaitable[str]]]] = {
    "cut_speaking": ("resumed; the turn's reply; one conversation upstream", cut_speaking),
    "cut_mid_reply": ("the rest of the reply after resumed; all of it", cut_mid_reply),
    "queued_during_grace": ("a second client queued; served when the grace ends", queued_during_grace),
    "refused_tokens": ("wrong, reused, expired tokens: resume_failed 1008", refused_tokens),
    "realtime_cut_mid_reply": ("Realtime: session.resumed, the rest of the reply; all of it",
                               realtime_cut_mid_reply),
    "realtime_refused": ("Realtime: an error resume_failed, then 1008", realtime_refused),
    "realtime_stock_cut": ("Realtime without ?resumable: no extension event; a cut ends it",
                           realtime_stock_cut),
}


async def resume_case(case: str, server: str) -> Outcome:
    expected, run = RESUME_CASES[case]
    outcome, checks = Outcome(f"resume {case}", server, expected), Checks()
    outcome.observed = await run(checks)
    outcome.failures = checks.failures
    return outcome
