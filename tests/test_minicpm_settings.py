"""The MiniCPM-o kind's own settings: ``MiniCPMSettings``, the original keywords ``ProxyConfig``
forwards to it, and the ``chunk_duration`` each way of starting a proxy begins with (0.2 s;
``VoiceClient`` keeps the original document's 1 s), checked on the real objects and, end to end,
by when the simulator gets its messages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from asgi_audio_proxy import AudioProxy, AudioProxyMiddleware, ProxyConfig, VoiceClient
from asgi_audio_proxy.audio import MESSAGE_BYTES
from asgi_audio_proxy.cli import build_parser
from asgi_audio_proxy.demo.server import build_demo_app
from asgi_audio_proxy.edge.serving import build_server_app
from asgi_audio_proxy.edge.settings import resolve_settings
from asgi_audio_proxy.upstreams import named_kind, realtime_kind
from asgi_audio_proxy.upstreams.minicpm.adapter import MiniCPMAdapter
from asgi_audio_proxy.upstreams.minicpm.kind import MINICPM, minicpm_kind
from asgi_audio_proxy.upstreams.minicpm.settings import MiniCPMSettings
from tests.clients import ProxyClient, at_real_time
from tests.conftest import running_simulator
from tests.http_clients import http_client
from tests.servers import serve
from tests.signals import tone
from tests.timing import within

LOG = logging.LoggerAdapter(logging.getLogger("tests.kind_settings"), {})


def settings_of(kind: Any) -> MiniCPMSettings:
    assert isinstance(kind.settings, MiniCPMSettings), kind
    return kind.settings


# -- the settings themselves ----------------------------------------------------------------------


@pytest.mark.parametrize(("duration", "messages"), [(0.2, 1), (0.4, 2), (0.6, 3), (1.0, 5), (2.0, 10)])
def test_s5_3_chunk_duration_sets_how_many_200ms_messages_wait(duration: float, messages: int) -> None:
    assert MiniCPMSettings(chunk_duration=duration).release_messages == messages


@pytest.mark.parametrize(("field", "value"), [
    ("chunk_duration", 0.3), ("chunk_duration", 0), ("chunk_duration", float("nan")),
    ("ack_timeout_s", float("inf")), ("max_skipped_s", -1), ("reply_stall_timeout_s", True),
])
def test_bad_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        MiniCPMSettings(**{field: value})  # type: ignore[arg-type]


def test_the_kind_starts_with_200ms_and_proxy_config_knows_no_minicpm_default() -> None:
    assert settings_of(MINICPM) == MiniCPMSettings()
    assert MiniCPMSettings().chunk_duration == 0.2
    assert ProxyConfig().chunk_duration is None  # the kind's own, whatever it is


# -- the original keywords, forwarded -------------------------------------------------------------


async def test_proxy_config_keywords_reach_the_kind_and_its_adapter() -> None:
    config = ProxyConfig(chunk_duration=1.0, ack_timeout_s=3.0, reply_stall_timeout_s=4.0,
                         max_skipped_s=5.0)
    proxy = AudioProxy(config)
    expected = MiniCPMSettings(chunk_duration=1.0, ack_timeout_s=3.0, reply_stall_timeout_s=4.0,
                               max_skipped_s=5.0)
    assert settings_of(proxy.kind) == expected
    async with http_client() as http:
        adapter = proxy.kind.factory("http://127.0.0.1:1", proxy.config, http, LOG)
        # a kind that never saw the config (a pool server's own) takes them when it makes one
        plain = MINICPM.factory("http://127.0.0.1:1", config, http, LOG)
    assert isinstance(adapter, MiniCPMAdapter) and isinstance(plain, MiniCPMAdapter)
    assert adapter.settings == plain.settings == expected
    await proxy.aclose()


async def test_a_forwarded_keyword_wins_over_the_kinds_setting_and_others_stay() -> None:
    kind = minicpm_kind(MiniCPMSettings(chunk_duration=0.4, ack_timeout_s=9.0), slots=2)
    proxy = AudioProxy(ProxyConfig(chunk_duration=0.6), kind=kind)
    assert settings_of(proxy.kind) == MiniCPMSettings(chunk_duration=0.6, ack_timeout_s=9.0)
    assert proxy.kind.slots == 2
    assert AudioProxy(kind=kind).kind is kind  # nothing forwarded: the very same kind
    await proxy.aclose()


@pytest.mark.parametrize(("config", "match"), [
    ({"chunk_duration": 0.3}, "chunk_duration=0.3"),
    ({"chunk_duration": 0.4, "max_buffered_s": 0.2}, "max_buffered_s"),
])
def test_a_forwarded_value_the_kind_refuses_fails_when_the_proxy_is_made(
        config: dict[str, float], match: str) -> None:
    proxy_config = ProxyConfig(**config)  # type: ignore[arg-type]  # it knows no MiniCPM-o rule
    with pytest.raises(ValueError, match=match):
        AudioProxy(proxy_config)
    with pytest.raises(ValueError, match=match):
        VoiceClient(config=proxy_config)


async def test_a_kind_without_such_settings_ignores_the_keywords() -> None:
    kind = realtime_kind()
    proxy = AudioProxy(ProxyConfig(upstream_url="ws://127.0.0.1:1/v1/realtime", chunk_duration=0.3),
                       kind=kind)
    assert proxy.kind is kind
    await proxy.aclose()


# -- where a user starts fresh ---------------------------------------------------------------------


async def test_audio_proxy_and_the_middleware_start_at_200ms() -> None:
    proxy = AudioProxy()
    middleware = AudioProxyMiddleware(Starlette())
    assert settings_of(proxy.kind).chunk_duration == 0.2
    assert settings_of(middleware.proxy.kind).chunk_duration == 0.2
    await proxy.aclose()
    await middleware.proxy.aclose()


@pytest.mark.parametrize(("argv", "environ", "expected"), [
    ([], {}, 0.2),
    ([], {"ASGI_AUDIO_PROXY_CHUNK_DURATION": "1"}, 1.0),
    (["--chunk-duration", "0.4"], {"ASGI_AUDIO_PROXY_CHUNK_DURATION": "1"}, 0.4),
])
async def test_serve_starts_at_200ms_unless_told(argv: list[str], environ: dict[str, str],
                                                 expected: float) -> None:
    settings = resolve_settings(build_parser().parse_args(["serve", *argv]), environ)
    app = build_server_app(settings, environ)
    assert settings_of(app.proxy.kind).chunk_duration == expected
    await app.proxy.aclose()


def test_serve_help_says_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    assert "the minicpm kind's: 0.2" in " ".join(capsys.readouterr().out.split())


async def test_the_demo_starts_at_200ms() -> None:
    app = build_demo_app("http://127.0.0.1:1")
    assert isinstance(app, AudioProxyMiddleware)
    assert settings_of(app.proxy.kind).chunk_duration == 0.2
    await app.proxy.aclose()


async def test_voice_client_keeps_the_documents_second() -> None:
    client = VoiceClient("127.0.0.1", 32550)
    other = VoiceClient(config=ProxyConfig(chunk_duration=0.2))
    assert settings_of(client.kind).chunk_duration == 1.0
    assert settings_of(other.kind).chunk_duration == 0.2
    assert named_kind("minicpm").name == client.kind.name
    await client.http_client.aclose()
    await other.http_client.aclose()


# -- end to end: when the simulator gets its messages ---------------------------------------------


AppMaker = Callable[[str], Awaitable[tuple[Any, Callable[[], Awaitable[None]]]]]


async def fresh_audio_proxy(upstream_url: str) -> tuple[Any, Callable[[], Awaitable[None]]]:
    proxy = AudioProxy(ProxyConfig(upstream_url=upstream_url))
    return proxy, proxy.aclose


async def fresh_voice_client(upstream_url: str) -> tuple[Any, Callable[[], Awaitable[None]]]:
    client = VoiceClient("127.0.0.1", int(upstream_url.rsplit(":", 1)[1]))

    async def endpoint(websocket: WebSocket) -> None:
        await client.start_audio_proxy(websocket)

    return Starlette(routes=[WebSocketRoute("/", endpoint)]), client.http_client.aclose


async def send_a_second(make: AppMaker, *, paced: bool) -> tuple[list[float], list[float]]:
    """Send 1 s of audio as five 200 ms frames through the app ``make`` builds: at real time
    (``paced``), or each once the previous one has reached the upstream. Returns when each frame
    was sent and when each message reached the upstream, on one clock (``time.perf_counter``)."""
    pcm, sent = tone(440, 1.0), []
    async with running_simulator(multi_conversation=True) as up:  # it times each message
        app, close = await make(up.url)
        try:
            async with serve("uvicorn", app) as port, ProxyClient(f"ws://127.0.0.1:{port}/") as client:
                start = asyncio.get_running_loop().time()
                for n, i in enumerate(range(0, len(pcm), MESSAGE_BYTES), 1):
                    if paced:
                        await at_real_time(start, (n - 1) * 0.2)
                    sent.append(time.perf_counter())
                    await client.conn.send(pcm[i:i + MESSAGE_BYTES])
                    if not paced:  # due at once: wait for it (a 1 s buffer never sends it)
                        await up.sim.recorder.wait_for(
                            lambda r, n=n: sum(map(len, r.arrivals.values())) >= n, timeout=within(5))
                await up.sim.recorder.wait_for(lambda r: len(r.acks) >= 5, timeout=within(5))
            (chunks,) = up.sim.recorder.chunks.values()
            assert b"".join(chunks) == pcm
            (arrived,) = up.sim.recorder.arrivals.values()
        finally:
            await close()
    return sent, arrived


async def test_a_fresh_audio_proxy_sends_each_message_as_soon_as_it_is_whole() -> None:
    sent, arrived = await send_a_second(fresh_audio_proxy, paced=False)
    assert all(arrived[k] < sent[k + 1] for k in range(4))


async def test_a_voice_client_holds_audio_until_a_second_has_gathered() -> None:
    sent, arrived = await send_a_second(fresh_voice_client, paced=True)
    assert arrived[0] > sent[4]  # the first message went only once the fifth was there
