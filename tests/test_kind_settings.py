"""Choosing the kind of model server: ``serve`` flags and variables, the TOML pool file, the demo.

In-process: what ``serve`` builds from its settings (the pool's servers, kinds and slots), and
every refusal naming what it refuses. The realtime kind itself is tested end to end in its own
tests; here only that it is chosen and configured.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asgi_audio_proxy.cli import build_parser, main
from asgi_audio_proxy.edge.pool_file import read_pool_file
from asgi_audio_proxy.edge.serving import build_server_app
from asgi_audio_proxy.edge.settings import ServeSettings, resolve_settings
from asgi_audio_proxy.pool.pool import UpstreamPool
from asgi_audio_proxy.upstreams.registry import named_kind


def settings_of(argv: list[str], environ: dict[str, str] | None = None) -> ServeSettings:
    return resolve_settings(build_parser().parse_args(["serve", *argv]), environ or {})


def test_the_kind_and_its_settings_come_from_flags_or_variables() -> None:
    flags = settings_of(["--upstream-kind", "realtime", "--upstream", "ws://gpu:8000/v1/realtime",
                         "--upstream-api-key", "sk-1", "--upstream-model", "m", "--slots", "4"])
    environ = {"ASGI_AUDIO_PROXY_UPSTREAM_KIND": "realtime", "ASGI_AUDIO_PROXY_UPSTREAM": "ws://gpu:8000",
               "ASGI_AUDIO_PROXY_UPSTREAM_API_KEY": "sk-1", "ASGI_AUDIO_PROXY_UPSTREAM_MODEL": "m",
               "ASGI_AUDIO_PROXY_SLOTS": "4"}
    variables = settings_of([], environ)
    for settings in (flags, variables):
        assert (settings.upstream_kind, settings.upstream_api_key, settings.upstream_model,
                settings.slots) == ("realtime", "sk-1", "m", 4)
    assert settings_of([]).upstream_kind == "minicpm" and settings_of([]).slots is None


async def test_serve_builds_a_pool_of_the_kind_with_its_slots() -> None:
    app = build_server_app(settings_of(["--upstream", "http://a:1", "--upstream", "http://b:1",
                                        "--slots", "3"]))
    pool = app.proxy.leaser
    try:
        assert isinstance(pool, UpstreamPool) and app.proxy.kind.name == "minicpm"
        assert pool.total_slots == 6 and pool.capacity("http://b:1") == 3
    finally:
        await pool.aclose()


def test_a_kind_refuses_what_it_does_not_take() -> None:
    with pytest.raises(ValueError, match="minicpm kind takes no"):
        named_kind("minicpm", api_key="sk-1")
    with pytest.raises(ValueError, match="unknown upstream kind 'vllm'"):
        named_kind("vllm")
    with pytest.raises(ValueError, match="minicpm upstream"):
        build_server_app(settings_of(["--upstream", "ws://gpu:1/v1/realtime"]))


def test_serve_says_an_unknown_kind_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--upstream-kind", "vllm"])
    assert stopped.value.code == 2
    assert "--upstream-kind: 'vllm': expected minicpm or realtime" in capsys.readouterr().err


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pool.toml"
    path.write_text(text)
    return path


def test_a_pool_file_mixes_kinds_slots_and_keys(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[upstream]]
url = "http://gpu-1:32550"

[[upstream]]
url = "ws://gpu-2:8000/v1/realtime"
kind = "realtime"
slots = 4
api_key_env = "GPU2_KEY"
model = "minicpm-o"
""")
    first, second = read_pool_file(path, {"GPU2_KEY": "sk-2"})
    assert (first.url, first.kind and first.kind.name, first.kind and first.kind.slots) == (
        "http://gpu-1:32550", "minicpm", 1)
    assert second.kind is not None and (second.kind.name, second.kind.slots) == ("realtime", 4)
    assert getattr(second.kind.settings, "api_key", None) == "sk-2"
    assert "sk-2" not in repr(second.kind.settings)  # a key never reaches a log line


@pytest.mark.parametrize(("text", "message"), [
    ("[[upstream]]\nurl = 1\n", "upstream #1: expected url"),
    ("[[upstream]]\nurl = 'http://a:1'\nslot = 2\n", "unknown key(s) ['slot']"),
    ("[[upstream]]\nurl = 'http://a:1'\nslots = 0\n", "invalid slots=0"),
    ("[[upstream]]\nurl = 'ws://a:1'\n", "upstream #1: invalid url='ws://a:1' for a minicpm upstream"),
    ("[[upstream]]\nurl = 'ws://a:1'\nkind = 'realtime'\napi_key_env = 'NOPE'\n",
     "the variable NOPE named by api_key_env is not set"),
    ("[server]\nurl = 'http://a:1'\n", "expected one or more [[upstream]] tables"),
    ("[[upstream]\n", "cannot read the pool file"),
])
def test_a_bad_pool_file_is_refused_naming_the_entry(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"pool\.toml") as refused:
        read_pool_file(write(tmp_path, text), {})
    assert message in str(refused.value)


async def test_serve_takes_a_pool_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[[upstream]]\nurl = 'http://a:1'\nslots = 2\n\n"
                           "[[upstream]]\nurl = 'ws://b:1/v1/realtime'\nkind = 'realtime'\n")
    app = build_server_app(settings_of(["--upstreams-file", str(path)]))
    pool = app.proxy.leaser
    try:
        assert isinstance(pool, UpstreamPool)
        assert pool.slots == ("http://a:1", "ws://b:1/v1/realtime", "http://a:1#2")
        assert [(pool.kind_of(u) or app.proxy.kind).name for u in pool.urls] == ["minicpm", "realtime"]
    finally:
        await pool.aclose()


def test_the_demo_needs_a_url_for_a_kind_the_simulator_does_not_play(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["demo", "--upstream-kind", "realtime", "--talk", "0"])
    assert stopped.value.code == 2
    assert "--upstream-kind realtime needs --upstream URL" in capsys.readouterr().err
