"""Shedding load at admission: the loop-lag gauge's verdict, and a handshake refused while it holds."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from asgi_audio_proxy import AudioProxy, ProxyConfig
from asgi_audio_proxy.cli import build_parser
from asgi_audio_proxy.edge.load_monitor import LagGauge
from asgi_audio_proxy.edge.serving import build_server_app
from asgi_audio_proxy.edge.settings import resolve_settings
from asgi_audio_proxy.metrics import ProxyMetrics
from tests.conftest import Upstream
from tests.fakes import OpenLeaser
from tests.servers import serve_uvicorn
from tests.timing import within


def test_a_short_stall_does_not_make_the_process_overloaded() -> None:
    gauge = LagGauge(0.1)
    for _ in range(100):  # five seconds of a loop on time
        gauge.record(0.001, 0.05)
    gauge.record(0.08, 0.13)  # one garbage collection's worth
    assert not gauge.overloaded
    assert gauge.lag_s < 0.02


def test_sustained_lag_over_the_threshold_is_overload_until_it_is_back_under_half() -> None:
    gauge = LagGauge(0.1)
    changes = [gauge.record(0.3, 0.35) for _ in range(4)]  # over a second, 300 ms late each time
    assert gauge.overloaded and changes.count(True) == 1
    while gauge.lag_s >= 0.05 * 1.2:  # on time again: it decays, still over half the threshold
        assert not gauge.record(0.0, 0.05)
        assert gauge.overloaded
    for _ in range(10):
        gauge.record(0.0, 0.05)
    assert gauge.lag_s < 0.05 and not gauge.overloaded


def test_a_long_stall_weighs_for_as_long_as_it_lasted() -> None:
    short, long = LagGauge(0.1), LagGauge(0.1)
    short.record(0.2, 0.25)
    long.record(2.0, 2.05)
    assert long.lag_s > 0.8 * 2.0 * (1 - 0.2) and short.lag_s < 0.1
    assert long.overloaded and not short.overloaded


@pytest.mark.parametrize("threshold", [0.0, -1.0, float("inf"), float("nan")])
def test_a_threshold_that_is_not_a_positive_finite_number_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold_s"):
        LagGauge(threshold)


def test_the_setting_must_be_none_or_positive() -> None:
    assert ProxyConfig().max_loop_lag_s is None
    assert AudioProxy(ProxyConfig()).load is None
    with pytest.raises(ValueError, match="max_loop_lag_s"):
        ProxyConfig(max_loop_lag_s=0)


def _block_the_loop(seconds: float) -> None:
    """Keep the event loop busy (CPU, not sleeping): the load a saturated process is under."""
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        pass


async def _ready(url: str) -> None:
    async with connect(url, ping_interval=None) as ws, asyncio.timeout(within(5)):
        assert json.loads(await ws.recv())["type"] == "ready"


async def test_an_overloaded_proxy_refuses_a_handshake_with_503_and_retry_after(
        upstream: Upstream) -> None:
    metrics = ProxyMetrics()
    proxy = AudioProxy(ProxyConfig(upstream_url=upstream.url, max_loop_lag_s=0.1, retry_after_s=7),
                       leaser=OpenLeaser(upstream.url), metrics=metrics)
    assert proxy.load is not None
    try:
        async with serve_uvicorn(proxy) as port:
            url = f"ws://127.0.0.1:{port}/"
            await _ready(url)  # admitted; its handshake started the monitor
            _block_the_loop(0.4)
            async with asyncio.timeout(within(5)):
                await proxy.load.wait_for(True)
            with pytest.raises(InvalidStatus) as refused:
                await connect(url, ping_interval=None)
            response = refused.value.response
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "7"
            assert b"overloaded" in response.body
            assert metrics.shed_sessions._value.get() == 1
            async with asyncio.timeout(within(10)):
                await proxy.load.wait_for(False)
            await _ready(url)  # caught up: admitted again
            assert metrics.shed_sessions._value.get() == 1
    finally:
        await proxy.aclose()


async def test_serve_takes_the_threshold_or_off_from_its_flag_or_its_variable() -> None:
    parser = build_parser()
    for argv, environ in ((["serve", "--max-loop-lag", "0.1"], {}),
                          (["serve"], {"ASGI_AUDIO_PROXY_MAX_LOOP_LAG": "0.1"})):
        settings = resolve_settings(parser.parse_args(argv), environ)
        app = build_server_app(settings)
        assert app.proxy.config.max_loop_lag_s == 0.1 and app.proxy.load is not None
        await app.proxy.aclose()
        await app.proxy.leaser.aclose()
    unset = build_server_app(resolve_settings(parser.parse_args(["serve"]), {}))
    assert unset.proxy.load is None  # a fresh process's warm-up would shed its first clients
    await unset.proxy.leaser.aclose()
    for argv, environ in ((["serve", "--max-loop-lag", "off"], {}),
                          (["serve"], {"ASGI_AUDIO_PROXY_MAX_LOOP_LAG": "off"})):
        off = build_server_app(resolve_settings(parser.parse_args(argv), environ))
        assert off.proxy.config.max_loop_lag_s is None and off.proxy.load is None
        await off.proxy.leaser.aclose()
