"""Two ``serve`` processes sharing one Redis, as two replicas behind a load balancer: a Realtime
client's connection to the first is cut (a TCP relay drops both sockets), its resume reaches the
second, which refuses it naming the first (``--replica``) and touches nothing; the same token at
the first resumes the session. Meanwhile the held session keeps its model server leased in
Redis, so a client of the second waits in the shared queue until the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from asgi_audio_proxy.cli import build_parser
from asgi_audio_proxy.dialects.native_client import QueuedMessage
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.edge.settings import SettingError, resolve_settings
from tests.clients import arrive
from tests.http_clients import http_client
from tests.processes import metric_totals
from tests.tcp_relay import tcp_relay
from tests.test_one_conversation import command, process, watched_simulator
from tests.timing import within

LISTENING = r"running on http://127\.0\.0\.1:(\d+)"


@contextlib.asynccontextmanager
async def replica(name: str, upstream: str, redis: str, prefix: str) -> AsyncIterator[int]:
    """``serve --replica NAME`` on a port of its own, sharing leases through ``redis``."""
    argv = command("serve", "--upstream", upstream, "--port", "0", "--redis", redis,
                   "--redis-prefix", prefix, "--replica", name, "--metrics",
                   "--resume-grace", "10", "--chunk-duration", "0.2", "--shutdown-grace", "1")
    async with process(argv, LISTENING) as port:
        yield port


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(within(10)):
        event: dict[str, Any] = json.loads(await ws.recv())
    return event


async def resumes(port: int) -> dict[str, float]:
    async with http_client() as http:
        page = (await http.get(f"http://127.0.0.1:{port}/audio_proxy/metrics")).text
    return {outcome: value for line in page.splitlines() if line.startswith("audio_proxy_resumes_total")
            for outcome, value in [(line.split('"')[1], float(line.rsplit(" ", 1)[1]))]}


@pytest.mark.slow
async def test_a_resume_at_the_other_replica_is_refused_naming_the_holder_and_works_at_the_holder(
        redis_url: str) -> None:
    prefix = f"replicas-{uuid.uuid4().hex[:8]}:"
    async with watched_simulator() as (upstream, recorder), \
            replica("edge-a", upstream.url, redis_url, prefix) as port_a, \
            replica("edge-b", upstream.url, redis_url, prefix) as port_b, \
            tcp_relay(port_a) as relay:
        ws = await connect(f"ws://127.0.0.1:{relay.port}/v1/realtime?resumable=1")
        created, ready = await next_event(ws), await next_event(ws)
        assert ready["type"] == "session.resumable" and ready["resume_token"].startswith("edge-a.")
        relay.cut()
        ws.transport.abort()

        # the held session's lease is in Redis: a client of the other replica waits for it
        waiting, first = await arrive(f"ws://127.0.0.1:{port_b}/audio_proxy", 15)
        assert isinstance(first, QueuedMessage), first

        token = ready["resume_token"]
        async with connect(f"ws://127.0.0.1:{port_b}/v1/realtime?resume={token}") as lost:
            refusal = await next_event(lost)
            async with asyncio.timeout(within(5)):
                await lost.wait_closed()
        assert refusal["type"] == "error" and refusal["error"]["code"] == "resume_failed"
        assert "held by replica edge-a" in refusal["error"]["message"] and lost.close_code == 1008

        async with connect(f"ws://127.0.0.1:{relay.port}/v1/realtime?resume={token}") as again:
            resumed = await next_event(again)
            assert resumed["type"] == "session.resumed", resumed
            assert resumed["session"]["id"] == created["session"]["id"]
        # the session ended with that close: the client of the other replica is served
        assert await waiting.queued_then_ready(15) == []
        await waiting.__aexit__()
        assert (await resumes(port_a), await resumes(port_b)) == ({"resumed": 1.0}, {"refused": 1.0})
        assert recorder.most_open_sockets == 1  # never two conversations on the model server
        async with http_client() as http:
            page = (await http.get(f"http://127.0.0.1:{port_a}/audio_proxy/metrics")).text
        assert metric_totals(page)["audio_proxy_live_sessions"] == 0


def test_a_replica_name_starts_each_token_and_must_be_letters_digits_dash_or_underscore() -> None:
    def replica_of(argv: list[str], environ: dict[str, str]) -> str | None:
        return resolve_settings(build_parser().parse_args(["serve", *argv]), environ).replica

    assert replica_of(["--replica", "edge-a"], {}) == "edge-a"
    assert replica_of([], {"ASGI_AUDIO_PROXY_REPLICA": "edge_b"}) == "edge_b"
    assert replica_of([], {}) is None  # host-pid-N, made by the proxy
    with pytest.raises(SettingError, match="ASGI_AUDIO_PROXY_REPLICA"):
        replica_of([], {"ASGI_AUDIO_PROXY_REPLICA": "edge.a"})  # the dot ends the name in a token
    assert AudioProxy(replica="edge-a").resume_tokens.replica == "edge-a"
