"""Resuming a conversation after a cut, with the real parts: uvicorn on loopback, the simulator,
the ``websockets`` client, and a TCP relay (:mod:`tests.tcp_relay`) that drops both sockets
without a close frame. The model server must see one conversation across the cut.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.native_client import (
    ErrorMessage,
    ReadyMessage,
    ResumedMessage,
    TurnEndMessage,
)
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.session.stats import SessionStats
from tests.clients import ProxyClient, arrive
from tests.conftest import Upstream, running_simulator
from tests.servers import serve_hypercorn, serve_uvicorn
from tests.signals import silence, tone
from tests.tcp_relay import TcpRelay, tcp_relay
from tests.timing import within

TONE = tone(440.0, 1.0)
QUIET = silence(1.0)  # the simulator ends a turn after 0.5 s of it


@contextlib.asynccontextmanager
async def proxied(grace_s: float = 5.0, **sim: Any
                  ) -> AsyncIterator[tuple[Upstream, AudioProxy, TcpRelay, list[SessionStats]]]:
    ended: list[SessionStats] = []
    async with running_simulator(**sim) as up:
        proxy = AudioProxy(ProxyConfig(upstream_url=up.url, resume_grace_s=grace_s),
                           on_session_end=ended.append)
        try:
            async with serve_uvicorn(proxy) as port, tcp_relay(port) as relay:
                yield up, proxy, relay, ended
        finally:
            await proxy.aclose()


async def resume(relay: TcpRelay, token: str | None) -> tuple[ProxyClient, object]:
    assert token is not None
    return await arrive(f"ws://127.0.0.1:{relay.port}/?resume={token}")


async def test_a_cut_while_the_user_speaks_resumed_gets_the_turns_reply() -> None:
    async with proxied() as (up, proxy, relay, ended):
        client, ready = await arrive(f"ws://127.0.0.1:{relay.port}/")
        assert isinstance(ready, ReadyMessage) and ready.resume_token
        await client.send_paced(TONE[:len(TONE) // 2])
        relay.cut()
        started = asyncio.get_running_loop().time()
        again, resumed = await resume(relay, ready.resume_token)
        assert isinstance(resumed, ResumedMessage), resumed
        assert resumed.session_id == ready.session_id and resumed.resume_token != ready.resume_token
        assert asyncio.get_running_loop().time() - started < 2.0
        turn = await again.say(TONE[len(TONE) // 2:] + QUIET)
        assert turn.audio and turn.ending == TurnEndMessage("complete")
        await again.__aexit__()
        await proxy.wait_idle()
        record = up.sim.recorder
        assert len(record.options) == 1 and record.ws_opened == 1
        assert len(set(record.completions_uids)) == 1 and len(record.chunks) == 1
        [stats] = ended
        assert stats.resumes == 1 and stats.balanced and stats.close_code == 1000


async def test_a_cut_mid_reply_sends_the_rest_after_resumed() -> None:
    async with proxied(chunk_delay_s=0.2) as (up, proxy, relay, ended):
        client, ready = await arrive(f"ws://127.0.0.1:{relay.port}/")
        assert isinstance(ready, ReadyMessage)
        await client.send_paced(TONE + QUIET)
        _, first = await client.next_frame()
        got = len(first) if isinstance(first, bytes) else 0
        while not got:  # the reply's text may come first
            frame, _ = await client.next_frame()
            got = len(frame) if isinstance(frame, bytes) else 0
        relay.cut()
        again, resumed = await resume(relay, ready.resume_token)
        assert isinstance(resumed, ResumedMessage)
        rest = await again.read_turn()
        assert rest.audio, "the rest of the reply came after resumed"
        assert rest.ending == TurnEndMessage("complete")
        await up.sim.recorder.wait_for(lambda r: len(r.replies) == 1, timeout=within(5))
        second = await again.say(tone(550.0, 1.0) + QUIET)
        assert second.ending == TurnEndMessage("complete")
        await again.__aexit__()
        await proxy.wait_idle()
        [stats] = ended
        turns = [reply.turn for reply in up.sim.recorder.replies]
        assert turns == [turns[0], turns[0] + 1]
        # what the client got in all equals what the proxy handed on for the first reply
        assert got + len(rest.audio) + len(second.audio) == stats.reply_audio_bytes
        assert stats.reply_audio_dropped_bytes == 0 and len(set(up.sim.recorder.completions_uids)) == 1


async def test_a_client_queued_during_the_grace_gets_the_upstream_when_it_ends() -> None:
    async with proxied(grace_s=0.5) as (up, proxy, relay, ended):
        _client, ready = await arrive(f"ws://127.0.0.1:{relay.port}/")
        assert isinstance(ready, ReadyMessage)
        relay.cut()
        second, queued = await arrive(f"ws://127.0.0.1:{relay.port}/")
        assert not isinstance(queued, ReadyMessage)
        positions = await second.queued_then_ready(timeout_s=5)
        assert ended and ended[0].end_reason.startswith("not resumed")
        assert ended[0].close_code == 1006 and ended[0].resumes == 0
        await second.__aexit__()
        await proxy.wait_idle()
        assert up.sim.recorder.ws_opened == 2 and positions in ([], [1])


async def refused(relay: TcpRelay, token: str) -> None:
    client, message = await arrive(f"ws://127.0.0.1:{relay.port}/?resume={token}")
    assert isinstance(message, ErrorMessage) and message.kind == "resume_failed", message
    async with asyncio.timeout(within(5)):
        await client.conn.wait_closed()
    assert client.conn.close_code == 1008


async def test_wrong_reused_and_expired_tokens_are_refused_with_1008() -> None:
    async with proxied(grace_s=0.5) as (up, proxy, relay, ended):
        _client, ready = await arrive(f"ws://127.0.0.1:{relay.port}/")
        assert isinstance(ready, ReadyMessage) and ready.resume_token
        await refused(relay, "not-a-token")
        relay.cut()
        _again, resumed = await resume(relay, ready.resume_token)
        assert isinstance(resumed, ResumedMessage)
        await refused(relay, ready.resume_token)  # used once already
        relay.cut()
        await proxy.wait_idle()  # the grace ends: the session with it
        await refused(relay, resumed.resume_token)  # expired
        assert up.sim.recorder.ws_opened == 1 and len(up.sim.recorder.options) == 1
        assert [s.end_reason[:12] for s in ended] == ["not resumed "]


async def test_under_hypercorn_which_reports_every_close_as_a_cut_no_session_is_held() -> None:
    ended: list[SessionStats] = []
    async with running_simulator() as up:
        proxy = AudioProxy(ProxyConfig(upstream_url=up.url), on_session_end=ended.append)
        try:
            async with serve_hypercorn(proxy) as port:
                client, ready = await arrive(f"ws://127.0.0.1:{port}/")
                assert isinstance(ready, ReadyMessage) and ready.resume_token is None
                await client.__aexit__()
                async with asyncio.timeout(within(5)):
                    await proxy.wait_idle()
        finally:
            await proxy.aclose()
    assert [s.resumes for s in ended] == [0] and len(proxy.resume_tokens) == 0


async def test_a_resume_that_reaches_another_replica_is_refused_naming_where_the_session_is() -> None:
    async with proxied(grace_s=0.5) as (up, proxy, relay, ended):
        other = AudioProxy(ProxyConfig(upstream_url=up.url))
        try:
            async with serve_uvicorn(other) as other_port:
                _client, ready = await arrive(f"ws://127.0.0.1:{relay.port}/")
                assert isinstance(ready, ReadyMessage) and ready.resume_token
                relay.cut()
                lost, message = await arrive(f"ws://127.0.0.1:{other_port}/?resume={ready.resume_token}")
                assert isinstance(message, ErrorMessage) and message.kind == "resume_failed"
                assert f"held by replica {proxy.resume_tokens.replica}" in message.message
                async with asyncio.timeout(within(5)):
                    await lost.conn.wait_closed()
                assert lost.conn.close_code == 1008 and not other.sessions
        finally:
            await other.aclose()
        await proxy.wait_idle()  # its grace ends: nothing on the other touched it
    assert [s.end_reason[:12] for s in ended] == ["not resumed "]
