"""``asgi-audio-proxy serve`` for operators: flags and ``ASGI_AUDIO_PROXY_*`` variables, a pool of
model servers, leases shared through Redis, and the Prometheus endpoint.

The settings are checked in-process (parsing, precedence, errors, ``--help``, the docs' table);
the deployment runs as operators run it: two ``serve`` processes, one real redis-server, two
simulators in this loop, real websockets clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asgi_audio_proxy.cli import build_parser, main
from asgi_audio_proxy.dialects.native_client import QueuedMessage, ReadyMessage, TurnEndMessage
from asgi_audio_proxy.edge.serving import build_server_app
from asgi_audio_proxy.edge.settings import SERVE_SETTINGS, ServeSettings, SettingError, resolve_settings
from tests.clients import arrive
from tests.http_clients import http_client
from tests.processes import metric_totals
from tests.redis_server import HAVE_REDIS, SKIP_REASON
from tests.test_one_conversation import (
    OverlapRecorder,
    command,
    process,
    utterance,
    watched_simulator,
)
from tests.timing import within

DOCS = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"


def settings_of(argv: list[str], environ: dict[str, str] | None = None) -> ServeSettings:
    return resolve_settings(build_parser().parse_args(["serve", *argv]), environ or {})


# -- settings -------------------------------------------------------------------------------


def test_defaults_are_one_local_model_server_and_no_redis() -> None:
    settings = settings_of([])
    assert settings.upstream == ("http://127.0.0.1:32550",)
    assert (settings.redis, settings.metrics, settings.max_queue, settings.port) == (None, False, 32, 8001)


def test_every_flag_has_a_variable_and_flags_win() -> None:
    environ = {"ASGI_AUDIO_PROXY_UPSTREAM": "http://a:1, http://b:2\thttp://c:3",
               "ASGI_AUDIO_PROXY_REDIS": "redis://r:6379/0", "ASGI_AUDIO_PROXY_MAX_QUEUE": "0",
               "ASGI_AUDIO_PROXY_MAX_QUEUE_WAIT": "12.5", "ASGI_AUDIO_PROXY_METRICS": "1",
               "ASGI_AUDIO_PROXY_PORT": "9000", "ASGI_AUDIO_PROXY_ALLOW_ORIGIN": "https://a.example"}
    from_env = settings_of([], environ)
    assert from_env.upstream == ("http://a:1", "http://b:2", "http://c:3")
    assert (from_env.redis, from_env.max_queue, from_env.max_queue_wait) == ("redis://r:6379/0", 0, 12.5)
    assert (from_env.metrics, from_env.port, from_env.allow_origin) == (True, 9000, ("https://a.example",))
    flags = settings_of(["--upstream", "http://x:1", "--max-queue", "3", "--no-metrics", "--port", "0"],
                        environ)
    assert (flags.upstream, flags.max_queue, flags.metrics, flags.port) == (("http://x:1",), 3, False, 0)
    assert flags.redis == "redis://r:6379/0"  # not given as a flag: the variable still counts


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("MAX_QUEUE", "-1", "a whole number >= 0"), ("UPSTREAM", "gpu1:32550", "http:// or https://"),
    ("METRICS", "maybe", "1 or 0"), ("REDIS", "http://r", "redis://"), ("PORT", "70000", "port"),
    ("MAX_QUEUE_WAIT", "0", "positive number"),
])
def test_a_bad_variable_names_itself_and_what_it_expects(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingError, match=re.escape(f"ASGI_AUDIO_PROXY_{name}={value!r}: expected")) as bad:
        settings_of([], {f"ASGI_AUDIO_PROXY_{name}": value})
    assert expected in str(bad.value)


@pytest.mark.parametrize(("argv", "environ", "said"), [
    (["serve", "--max-queue", "many"], {}, "argument --max-queue: 'many': expected a whole number"),
    (["serve"], {"ASGI_AUDIO_PROXY_MAX_QUEUE": "many"}, "ASGI_AUDIO_PROXY_MAX_QUEUE='many'"),
    (["serve", "--chunk-duration", "0.3"], {}, "chunk_duration=0.3"),
    (["serve", "--upstream", "http://a:1", "--upstream", "http://a:1"], {}, "distinct"),
    (["--log-level", "loud", "serve"], {}, "--log-level"),
    (["serve"], {"ASGI_AUDIO_PROXY_LOG_LEVEL": "loud"}, "ASGI_AUDIO_PROXY_LOG_LEVEL='loud'"),
])
def test_a_bad_value_is_one_line_and_exit_2(argv: list[str], environ: dict[str, str], said: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv, environ)
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert err.count("\n") == 1 and err.startswith("asgi-audio-proxy") and said in err, err
    assert "Traceback" not in err


def test_help_lists_every_flag_with_its_default_and_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--help"], {})
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    assert stopped.value.code == 0
    for setting in SERVE_SETTINGS:
        assert setting.flag in text and f"env {setting.env})" in text, setting.name
    assert "(default http://127.0.0.1:32550; env ASGI_AUDIO_PROXY_UPSTREAM)" in text
    assert "(default 32; env ASGI_AUDIO_PROXY_MAX_QUEUE)" in text


def test_the_deployment_docs_have_every_setting_in_one_table() -> None:
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith("| `--")]
    for setting in SERVE_SETTINGS:
        assert any(f"`{setting.flag}" in row and f"`{setting.env}`" in row for row in rows), setting.name


async def test_one_model_server_without_redis_warns_once_at_start_up(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "asgi_audio_proxy.serving")
    alone = build_server_app(settings_of(["--upstream", "http://gpu:1"]))
    shared = build_server_app(settings_of(["--upstream", "http://gpu:1", "--redis", "redis://r:1/0"]))
    for app in (alone, shared):
        await app.proxy.leaser.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unless --redis is set" in warnings[0], warnings


# -- two processes, one Redis -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve_process(how: str, upstreams: list[str], redis: str, prefix: str) -> AsyncIterator[str]:
    """``serve`` with the pool, Redis and metrics, set by flags or by variables; yields its base."""
    if how == "flags":
        argv = command("serve", *[a for url in upstreams for a in ("--upstream", url)], "--redis", redis,
                       "--redis-prefix", prefix, "--metrics", "--port", "0", "--chunk-duration", "0.2")
        env: dict[str, str] = {}
    else:
        argv = command("serve")
        env = {"ASGI_AUDIO_PROXY_UPSTREAM": ",".join(upstreams), "ASGI_AUDIO_PROXY_REDIS": redis,
               "ASGI_AUDIO_PROXY_REDIS_PREFIX": prefix, "ASGI_AUDIO_PROXY_METRICS": "1",
               "ASGI_AUDIO_PROXY_PORT": "0", "ASGI_AUDIO_PROXY_CHUNK_DURATION": "0.2"}
    async with process(argv, r"running on http://127\.0\.0\.1:(\d+)", env=env) as port:
        yield f"127.0.0.1:{port}/audio_proxy"


async def scrape(base: str) -> dict[str, float]:
    """The process's metrics, summed over labels: ``{"audio_proxy_live_sessions": 2.0, ...}``."""
    async with http_client(trust_env=False, timeout=within(10)) as client:
        response = await client.get(f"http://{base}/metrics")
    assert response.status_code == 200, response.text
    return metric_totals(response.text)


@pytest.mark.skipif(not HAVE_REDIS, reason=SKIP_REASON)
@pytest.mark.parametrize("how", ["flags", pytest.param("environment", marks=pytest.mark.slow)])
async def test_two_processes_two_model_servers_three_clients_two_live_one_queued(
        how: str, redis_url: str) -> None:
    prefix = f"serve-{uuid.uuid4().hex[:8]}:"
    async with watched_simulator() as (up1, rec1), watched_simulator() as (up2, rec2):
        upstreams = [up1.url, up2.url]
        async with serve_process(how, upstreams, redis_url, prefix) as a, \
                serve_process(how, upstreams, redis_url, prefix) as b:
            (c1, e1), (c2, e2), (c3, e3) = [await arrive(f"ws://{base}", 15) for base in (a, b, a)]
            assert [type(e) for e in (e1, e2, e3)] == [ReadyMessage, ReadyMessage, QueuedMessage]
            assert isinstance(e3, QueuedMessage) and e3.position == 1
            seen_a, seen_b = await scrape(a), await scrape(b)
            assert seen_a["audio_proxy_live_sessions"] == 2 and seen_a["audio_proxy_queue_length"] == 1
            assert seen_b["audio_proxy_live_sessions"] == 1 and seen_b["audio_proxy_queue_length"] == 0
            assert seen_a["audio_proxy_upstream_leases"] + seen_b["audio_proxy_upstream_leases"] == 2
            async with asyncio.TaskGroup() as tg:
                turns = [tg.create_task(c.say(utterance(i))) for i, c in enumerate((c1, c2))]
            await c1.__aexit__()  # across processes: B's model server stays busy, A's frees
            assert isinstance(await c3.next_message(15), ReadyMessage)
            last = await c3.say(utterance(2))
            for client in (c2, c3):
                await client.__aexit__()
            ended = await scrape(a)
        for turn, i in ((turns[0].result(), 0), (turns[1].result(), 1), (last, 2)):
            assert turn.ending == TurnEndMessage("complete")
            assert turn.text.startswith("Turn 1: heard"), (i, turn.text)
        assert ended["audio_proxy_queue_wait_seconds_count"] == 1
        for recorder in (rec1, rec2):
            await recorder.wait_for(lambda r: r.ws_closed == r.ws_opened, within(10))
        served = [len(set(r.completions_uids)) for r in (rec1, rec2)]
        assert sorted(served) == [1, 2]  # A's first model server served c1, then c3
        for recorder, conversations in zip((rec1, rec2), served, strict=True):
            OverlapRecorder.assert_one_conversation_at_a_time(recorder, conversations)
