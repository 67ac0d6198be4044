"""``ProxyMetrics``: the client wrapper's counts and turn timing, and a scrape of a live proxy."""

from __future__ import annotations

import asyncio
import json

from prometheus_client.parser import text_string_to_metric_families

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.native_client import QueuedMessage, TurnEndMessage
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.events import AudioIn, Configure, Queued, ReplyAudio, ReplyEnded, ReplyText
from asgi_audio_proxy.metrics import MeteredClient, ProxyMetrics, TurnTimer
from asgi_audio_proxy.pool.pool import UpstreamPool
from tests.clients import arrive
from tests.conftest import running_simulator
from tests.fakes import FakeClient
from tests.http_clients import http_client
from tests.servers import serve_uvicorn
from tests.test_pool import UTTERANCE
from tests.timing import FakeClock, within


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a scrape (0 when it is absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_a_turn_is_timed_from_the_last_audio_to_the_first_reply_event() -> None:
    metrics, clock = ProxyMetrics(), FakeClock(now=0.0)
    timer = TurnTimer(metrics, clock=clock)
    for at, event in ((1.0, AudioIn(b"\x00" * 640, 16_000)), (1.5, Configure({})),
                      (2.0, AudioIn(b"\x00" * 320, 16_000))):
        clock.now = at
        timer(event)
    clock.now = 2.5
    timer(Queued(1, 0.0))  # not a reply
    clock.now = 3.25
    timer(ReplyText("hi"))  # the reply starts
    clock.now = 4.0
    timer(ReplyAudio(b"\x00" * 100, 16_000))  # same reply: not timed again
    timer(ReplyEnded("complete"))
    text = metrics.exposition()
    assert sample(text, "audio_proxy_turn_latency_seconds_count") == 1
    assert sample(text, "audio_proxy_turn_latency_seconds_sum") == 1.25


async def test_the_metered_client_counts_bytes_both_ways() -> None:
    metrics, fake = ProxyMetrics(), FakeClient()
    client = MeteredClient(fake, metrics)
    fake.feed(b"\x00" * 640, json.dumps({"type": "config"}))
    await client.receive()
    await client.receive()
    await client.send(b"\x00" * 100)
    text = metrics.exposition()
    assert sample(text, "audio_proxy_client_received_bytes_total") == 640 + len('{"type": "config"}')
    assert sample(text, "audio_proxy_client_sent_bytes_total") == 100


async def test_a_scrape_of_a_live_pooled_proxy_shows_sessions_queue_leases_and_turns() -> None:
    metrics = ProxyMetrics()
    async with running_simulator() as up:
        pool = UpstreamPool([up.url], metrics=metrics, health_interval_s=0.1)
        proxy = AudioProxy(ProxyConfig(chunk_duration=0.2), leaser=pool, metrics=metrics)
        async with serve_uvicorn(proxy) as port, http_client() as http:
            scrape_url = f"http://127.0.0.1:{port}/metrics"
            first, _ = await arrive(f"ws://127.0.0.1:{port}/")
            second, event = await arrive(f"ws://127.0.0.1:{port}/")
            assert isinstance(event, QueuedMessage)
            text = (await http.get(scrape_url)).text
            assert sample(text, "audio_proxy_live_sessions") == 2
            assert sample(text, "audio_proxy_queue_length") == 1
            assert sample(text, "audio_proxy_upstream_leases", upstream=up.url) == 1
            assert sample(text, "audio_proxy_upstream_healthy", upstream=up.url) == 1
            turn = await first.say(UTTERANCE)
            assert isinstance(turn.ending, TurnEndMessage)
            await first.__aexit__()
            assert await second.queued_then_ready() == []
            await second.__aexit__()
            async with asyncio.timeout(within(5)):
                await proxy.wait_idle()
            text = (await http.get(scrape_url)).text
        await proxy.aclose()
        await pool.aclose()
    assert sample(text, "audio_proxy_live_sessions") == 0
    assert sample(text, "audio_proxy_queue_length") == 0
    assert sample(text, "audio_proxy_upstream_leases", upstream=up.url) == 0
    assert sample(text, "audio_proxy_queue_wait_seconds_count", outcome="served") == 1
    assert sample(text, "audio_proxy_turn_latency_seconds_count") == 1
    assert sample(text, "audio_proxy_client_received_bytes_total") >= len(UTTERANCE)
    assert sample(text, "audio_proxy_client_sent_bytes_total") > 0
    assert sample(text, "audio_proxy_upstream_errors_total", upstream=up.url, source="health") == 0


async def test_without_metrics_the_path_is_just_another_http_request() -> None:
    proxy = AudioProxy(ProxyConfig())
    async with serve_uvicorn(proxy) as port, http_client() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/metrics")).status_code == 426
    await proxy.aclose()
