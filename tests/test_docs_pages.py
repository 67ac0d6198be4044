"""docs/*.md: the handlers of each page's blocks (how they run, and the test that runs them:
``tests/test_docs.py``), and the deployment page's table of settings."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from asgi_audio_proxy.cli import main
from tests.docs_blocks import REPO, Blocks
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
    serve_app,
    simulator,
)
from tests.redis_server import HAVE_REDIS, SKIP_REASON

#: apps the pages build with no command of their own: the README's way, on this page's port
UVICORN_8000 = "uvicorn your_app:app --host 0.0.0.0 --port 8000"

# -- architecture.md -------------------------------------------------------------------------

ARCHITECTURE = "docs/architecture.md"
TREE = (ARCHITECTURE, "asgi_audio_proxy/")
JSON8K = (ARCHITECTURE, 'class Json8kDialect:                       # {"audio": "<base64 PCM16 8 kHz>"} in,'
                        ' JSON events out')
ECHO = (ARCHITECTURE, "class EchoAdapter:")
HANDLERS.cannot_run((ARCHITECTURE, "client ──frame──► dialect.receive ──AudioIn(pcm, rate)──► session"
                                   " ──resample①──► adapter.send_audio"),
                    "a diagram of the data path, not a command")
HANDLERS.cannot_run(ECHO, "an excerpt: six of the adapter's methods are left to the test (\"see the "
                          "test\"), and EchoModel is the test's; the whole adapter runs in "
                          "tests/test_upstream_seam.py")


@HANDLERS.runs(TREE, sandboxed=False, group="static")
async def package_tree(blocks: Blocks, box: None, tmp: Path) -> None:
    """Every module and subpackage the tree names is there."""
    root = REPO / "asgi_audio_proxy"
    for line in blocks[TREE].text.splitlines()[1:]:
        if not re.match(r"  \S", line):
            continue  # a description going on from the line before
        names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        for name in names.split(", "):
            assert (root / name.rstrip("/")).exists(), f"{blocks[TREE].where}: no {name} in the package"


#: the dialect block's names, and the app and config it adds to
JSON8K_PRELUDE = """
import base64
import json

from starlette.applications import Starlette
from starlette.types import Scope

from asgi_audio_proxy import AudioProxyMiddleware, ProxyConfig
from asgi_audio_proxy.dialects.base import Frame
from asgi_audio_proxy.events import AudioIn, ClientEvent, ReplyAudio, ReplyEnded, ServerEvent

app = Starlette()
config = ProxyConfig()
"""


@HANDLERS.runs(JSON8K, group="apps")
async def json8k_dialect(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The dialect on ``/json8k`` says a turn: base64 PCM16 8 kHz in, ``audio`` and ``done`` out."""
    await simulator(box)
    await serve_app(box, tmp, blocks[JSON8K].python(prelude=JSON8K_PRELUDE),
                    "uvicorn your_app:app --host 0.0.0.0 --port 8001")
    turn, native = await box.probes(["json8k", "ws://127.0.0.1:8001/json8k"],
                                    ["ws", "ws://127.0.0.1:8001/audio_proxy"])
    assert turn["events"] == ["audio", "done"] and turn["audio_s"] > 0.5, turn
    assert_first(native, "ready")  # "native stays on /audio_proxy"


# -- benchmarks.md, vad.md: measurements, not tests ---------------------------------------------

BENCHMARK_RUNS = ("docs/benchmarks.md",
                  "python -m benchmarks                 # full run, about 9 minutes (2-core machine)")
VAD_RUNS = ("docs/vad.md", "python -m benchmarks.vad --quick          # under 20 s")
VAD_EXTRA = ("docs/vad.md", "pip install 'asgi-audio-proxy[vad]'   # the Silero model; without it, "
                            "the energy fallback below")
#: each line's reason, by its command up to the first comment
MEASUREMENTS = {
    "python -m benchmarks": "about 9 minutes, three times the whole suite (tests/test_benchmarks.py "
                            "runs --quick)",
    "python -m benchmarks --quick": "40-45 s of two cores' CPU: tests/test_benchmarks.py runs it",
    "python -m benchmarks --json report.json --plot bench.png": "the full run, with its report",
    "python -m benchmarks --soak-seconds 600": "a 10-minute soak",
    "python -m benchmarks.against REV": "REV stands for a git revision; a paired run takes about 90 s",
    "python -m benchmarks.vad --quick": "about 20 s of CPU with espeak-ng, more than this module's "
                                        "share of the suite's time",
    "python -m benchmarks.vad --json": "the full set, minutes",
    "python -m benchmarks.vad --candidates": "every VAD package on the index, installed side by side",
}


@HANDLERS.runs(BENCHMARK_RUNS, VAD_RUNS, VAD_EXTRA, sandboxed=False, group="static")
async def measurements(blocks: Blocks, box: None, tmp: Path) -> None:
    """Not run, each line for its reason in :data:`MEASUREMENTS`; each module must exist and
    take the flags its lines give it. The ``vad`` extra must exist (the index is not used)."""
    assert_extra(blocks[VAD_EXTRA].text)
    helps: dict[str, str] = {}
    for ref in (BENCHMARK_RUNS, VAD_RUNS):
        for line in blocks[ref].commands():
            command = line.split("#", 1)[0].strip()
            assert command in MEASUREMENTS, f"{blocks[ref].where}: no reason for not running {command!r}"
            module = command.split()[2]
            if module not in helps:
                helps[module] = help_text(module)
            for flag in re.findall(r"--[\w-]+", command):
                assert flag in helps[module], f"{module} has no {flag}"


# -- demo.md ---------------------------------------------------------------------------------

DEMO = "docs/demo.md"
ONE_COMMAND = (DEMO, "pip install -e '.[demo]'          # from a clone; the demo itself needs nothing beyond"
                     " the package")
IT_PRINTS = (DEMO, "asgi-audio-proxy demo: open http://127.0.0.1:8001/ and press Start talking")
REAL_SERVER = (DEMO, "asgi-audio-proxy demo --upstream http://127.0.0.1:32550")
EXAMPLE = (DEMO, "asgi-audio-proxy simulate &                                  # or the real model server on"
                 " :32550")


@HANDLERS.runs(ONE_COMMAND, IT_PRINTS, group="demo")
async def demo_command(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The install line is not run (it installs into the environment the suite runs in): its
    extra must exist. The demo line runs, and prints what the page shows, line for line, every
    URL in it answering as it says; its ``python -m demo_app`` alternative (from the clone's
    root), at the same time in a sandbox of its own, starts the same demo (stopped once it
    listens)."""
    install, command = blocks[ONE_COMMAND].commands()
    assert_extra(install)
    alternative = re.search(r"# or: (.+)$", command)
    assert alternative, command

    async def the_alternative() -> None:
        async with Sandbox() as other:
            demo = await other.start(alternative.group(1), cwd=REPO)
            await demo.line(r"a test client says 2 generated turn\(s\) to ws://127\.0\.0\.1:8001/audio_proxy")

    async with asyncio.TaskGroup() as tg:
        tg.create_task(the_alternative())
        demo = await box.start(command)
        await demo.line(r"Ctrl-C stops", 30)
    shown = blocks[IT_PRINTS].text.splitlines()
    start = next((i for i, line in enumerate(demo.lines) if line == shown[0]), None)
    assert start is not None and demo.lines[start:start + len(shown)] == shown, demo.output
    page = re.search(r"open (http://\S+) and press", demo.output)
    assert page and (await box.probe("http", page.group(1)))["status"] == 200, demo.output
    await printed_urls(box, "\n".join(shown))


@HANDLERS.runs(REAL_SERVER, group="demo")
async def demo_with_a_model_server(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The model server on 127.0.0.1:32550; stopped once its start-up talk's first reply came."""
    await simulator(box)
    demo = await box.start(blocks[REAL_SERVER].commands()[0])
    await demo.line(r"^turn 1: .*\(complete\)$", 30)


@HANDLERS.runs(EXAMPLE, group="terminal_clients")
async def original_example(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """Every line, in order, from the repository's root: the simulator in the background, the
    example under uvicorn, the client (three generated turns). At the same time, in a sandbox
    of its own, the simulator line and the example's ``python`` alternative, which must start
    the same server (stopped once it listens)."""
    simulate, example, client = blocks[EXAMPLE].commands()
    alternative = re.search(r"^# or: (.+?)\s*$", blocks[EXAMPLE].text, re.MULTILINE)
    assert alternative, blocks[EXAMPLE].text

    async def the_alternative() -> None:
        async with Sandbox() as other:
            await (await other.start(simulate, cwd=REPO)).line(LISTENING)
            await (await other.start(alternative.group(1), cwd=REPO)).line(LISTENING)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(the_alternative())
        await (await box.start(simulate, cwd=REPO)).line(LISTENING)
        await (await box.start(example, cwd=REPO)).line(LISTENING)
        said = await box.run(client, cwd=tmp, timeout_s=40)
    assert re.search(r"^ok: 3/3 turn\(s\) got a reply", said.output, re.MULTILINE), said.output


# -- deployment.md ---------------------------------------------------------------------------

DEPLOYMENT = "docs/deployment.md"
SERVE_LINES = (DEPLOYMENT, "# one GPU: clients queue for it (queued, then ready); several processes? add"
                           " --redis")
PROXY_APP = (DEPLOYMENT, "# proxy_app.py")
HYPERCORN = (DEPLOYMENT, "hypercorn proxy_app:app --bind 0.0.0.0:8001 --workers 4           # or one uvicorn"
                         " per container")
HANDLERS.cannot_run((DEPLOYMENT, " clients ──► load balancer ──► proxy replicas (uvicorn workers /"
                                 " containers) ──► gpu0:32550"),
                    "a diagram of a deployment, not a command")
GPUS = ("gpu0:32550", "gpu1:32550", "gpu2:32550")


@HANDLERS.runs(SERVE_LINES, group="pools")
async def serve_lines(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The three ways, one after the other: one model server; three (``gpu0``..``gpu2``) with
    Redis at ``redis:6379`` and metrics, by flags; the same by variables."""
    if not HAVE_REDIS:
        pytest.skip(SKIP_REASON)
    await box.simulators("127.0.0.1:32550", *GPUS)
    await box.redis()
    one, by_flags, by_variables = blocks[SERVE_LINES].commands()
    async with box.serving(one, LISTENING):
        await ready(box, "ws://127.0.0.1:8001/audio_proxy")
    for line in (by_flags, by_variables):
        async with box.serving(line, LISTENING):
            session, metrics = await box.probes(["ws", "ws://127.0.0.1:8001/audio_proxy"],
                                                ["http", "http://127.0.0.1:8001/audio_proxy/metrics"])
            assert_first(session, "ready")
            assert all(f'upstream="http://{gpu}"' in metrics["body"] for gpu in GPUS), metrics


def test_the_deployment_table_gives_each_setting_the_default_serve_has(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The table of flags and variables is not a block, but it is runnable in this sense: each
    row's default is the one ``serve --help`` (``--help`` for ``--log-level``) states for its
    variable. (That each setting has a row: ``tests/test_cli_serve.py``.)"""
    helps = []
    for argv in (["--help"], ["serve", "--help"]):
        with pytest.raises(SystemExit):
            main(argv, {})
        helps.append(" ".join(capsys.readouterr().out.split()))
    stated = {env: default for default, env in
              re.findall(r"default ([^;]+); env (ASGI_AUDIO_PROXY_\w+)\)", " ".join(helps))}
    rows = [row.split("|") for row in (REPO / DEPLOYMENT).read_text().splitlines() if row.startswith("| `--")]
    assert rows
    for row in rows:
        env = re.search(r"`(ASGI_AUDIO_PROXY_\w+)`", row[2])
        assert env and env.group(1) in stated, row
        in_table, in_help = (re.sub(r"[`():]", "", text).split() for text in (row[3], stated[env.group(1)]))
        assert in_help[: len(in_table)] == in_table, (env.group(1), row[3], stated[env.group(1)])


@HANDLERS.runs(PROXY_APP, HYPERCORN)
async def proxy_app_on_hypercorn(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """``proxy_app.py`` as its first line names it, served by the hypercorn line (four workers)."""
    if not HAVE_REDIS:
        pytest.skip(SKIP_REASON)
    await box.simulators(*GPUS)
    await box.redis()
    (tmp / "proxy_app.py").write_text(blocks[PROXY_APP].text)
    async with box.serving(blocks[HYPERCORN].commands()[0], r"Running on http://0\.0\.0\.0:8001", cwd=tmp):
        session, metrics = await box.probes(["ws", "ws://127.0.0.1:8001/"],
                                            ["http", "http://127.0.0.1:8001/metrics"])
        assert_first(session, "ready")
        assert metrics["status"] == 200 and "audio_proxy_live_sessions" in metrics["body"], metrics


# -- realtime.md -----------------------------------------------------------------------------

REALTIME = "docs/realtime.md"
SERVE_IT = (REALTIME, "from asgi_audio_proxy import AudioProxyMiddleware, ProxyConfig")
OPENAI_SDK = (REALTIME, 'client = AsyncOpenAI(api_key="your-proxy-key",'
                        ' websocket_base_url="ws://host:8000/v1")')
AGENTS_PY = (REALTIME, "session = await RealtimeRunner(agent).run(model_config={")
AGENTS_JS = (REALTIME, "const session = new RealtimeSession(agent, { transport: 'websocket', model:"
                       " 'gpt-realtime' });")
KEYS = (REALTIME, "from asgi_audio_proxy.dialects.realtime import realtime_api_key")
HANDLERS.cannot_run((REALTIME, " Realtime app ──ws /v1/realtime──► AudioProxyMiddleware + realtime dialect"
                               " ──► MiniCPM-o server"),
                    "a diagram, not a command")
#: the openai snippet's names: its import, and the audio it appends (a second of tone, then quiet)
OPENAI_PRELUDE = """
import asyncio
import base64

import numpy as np
from openai import AsyncOpenAI

_t = np.arange(24_000) / 24_000
base64_pcm16_24khz = base64.b64encode(
    (np.sin(2 * np.pi * 440 * _t) * 9830).astype("<i2").tobytes() + bytes(2 * 36_000)).decode()
"""
#: its ``...``, the app's own handling of the events, ends the loop when the reply is done
OPENAI_HANDLING = """
print(event.type, flush=True)
if event.type == "response.done":
    break
"""


@HANDLERS.runs(SERVE_IT, OPENAI_SDK, AGENTS_PY, AGENTS_JS, group="realtime")
async def realtime_page(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The middleware around a FastAPI app on ``host:8000``, then the three SDK snippets; the
    openai one says a turn (its ``...``, the app's own code, stops at ``response.done``)."""
    await simulator(box)
    await serve_app(box, tmp, blocks[SERVE_IT].python(prelude=YOUR_APP), UVICORN_8000)
    openai_app = blocks[OPENAI_SDK].with_placeholder(OPENAI_HANDLING).python_in_main(OPENAI_PRELUDE)
    said = await realtime_clients(box, tmp, openai_app, blocks[AGENTS_PY], blocks[AGENTS_JS])
    assert said.lines[-1] == "response.done" and "response.output_audio.delta" in said.lines, said.output
    await ready(box, "ws://host:8000/audio_proxy")  # the native path beside it


#: the key check's names: the app it wraps, its config, and the dialect it registers
KEYS_PRELUDE = YOUR_APP + """
from asgi_audio_proxy import AudioProxyMiddleware, ProxyConfig
from asgi_audio_proxy.dialects.realtime import realtime_dialect

config = ProxyConfig()
"""


@HANDLERS.runs(KEYS, group="realtime")
async def realtime_keys(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """A known key by header or by the browser's subprotocol gets a session; others get 401."""
    await simulator(box)
    await serve_app(box, tmp, blocks[KEYS].python(prelude=KEYS_PRELUDE), UVICORN_8000)
    url = "ws://host:8000/v1/realtime?model=minicpm-o"
    by_header, by_subprotocol, unknown, none = await box.probes(
        ["ws", url, "--header=Authorization:Bearer sk-team-a"],
        ["ws", url, "--subprotocol=realtime", "--subprotocol=openai-insecure-api-key.sk-team-b"],
        ["ws", url, "--header=Authorization:Bearer sk-team-c"], ["ws", url])
    assert_first(by_header, "session.created")
    assert_first(by_subprotocol, "session.created")
    assert unknown["status"] == none["status"] == 401, (unknown, none)


# -- webrtc.md -------------------------------------------------------------------------------

WEBRTC = "docs/webrtc.md"
HANDLERS.cannot_run((WEBRTC, " browser ──POST /v1/realtime/calls (SDP offer)──► proxy ──► 201, SDP answer,"
                             " Location"), "a diagram, not a command")
for _first in ("import { RealtimeAgent, RealtimeSession } from '@openai/agents/realtime';",
               "const pc = new RTCPeerConnection();"):
    HANDLERS.cannot_run((WEBRTC, _first), "browser code (a page's microphone and RTCPeerConnection); "
                        "tests/webrtc/test_calls.py makes the same calls with aiortc as the browser")
HANDLERS.cannot_run((WEBRTC, "from asgi_audio_proxy import AudioProxyMiddleware"),
                    "an excerpt: starlette_app and config are the app's; add_calls_route is what serve "
                    "and the demo call, run by tests/webrtc/test_calls.py")


# -- twilio.md -------------------------------------------------------------------------------

TWILIO = "docs/twilio.md"
TWILIO_EXTRA = (TWILIO, "pip install 'asgi-audio-proxy[twilio]'     # the twilio package builds the TwiML"
                        " and checks signatures")
PHONE_APP = (TWILIO, "# phone_app.py")
PHONE_UVICORN = (TWILIO, "uvicorn phone_app:app --host 127.0.0.1 --port 8000 --proxy-headers")
TWIML = (TWILIO, '<Response><Connect><Stream url="wss://voice.example.com/twilio">')
ADMIT = (TWILIO, "async def admit(parameters, identity):")
HANDLERS.cannot_run((TWILIO, ' phone ──► Twilio ──POST /voice──► TwimlEndpoint      (TwiML: <Connect><Stream'
                             ' url="wss://…/twilio">)'),
                    "a diagram, not a command")
HANDLERS.cannot_run((TWILIO, "voice.example.com {"),
                    "a Caddyfile: needs Caddy (not installed here), a public DNS name and a "
                    "certificate from Let's Encrypt")
HANDLERS.cannot_run((TWILIO, "server {"),
                    "an nginx site: needs nginx (not installed here) and a certificate for a "
                    "public name")
HANDLERS.cannot_run((TWILIO, "twilio phone-numbers:update +15550100 --voice-url"
                             " https://voice.example.com/voice"),
                    "the Twilio CLI on a Twilio account with a real phone number")


@HANDLERS.runs(PHONE_APP, PHONE_UVICORN, TWIML, TWILIO_EXTRA, group="twilio")
async def phone_app(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """``phone_app.py`` as named, served by the page's uvicorn line. Twilio's webhook, signed as
    Twilio signs it (for the ``webhook_url`` the app names), reaches it as through the page's
    reverse proxy (``Host`` and ``X-Forwarded-Proto`` set): the TwiML is the page's, to the
    byte once canonical. Unsigned, it is refused. Then a call on the stream gets a reply."""
    from twilio.request_validator import RequestValidator

    assert_extra(blocks[TWILIO_EXTRA].text)
    await simulator(box)
    (tmp / "phone_app.py").write_text(blocks[PHONE_APP].text)
    await (await box.start(blocks[PHONE_UVICORN].commands()[0], cwd=tmp)).line(LISTENING)
    call = {"CallSid": "CA00000000000000000000000000000001", "From": "+15550100", "To": "+15550199"}
    token = re.search(r'auth_token="([^"]+)"', blocks[PHONE_APP].text)
    webhook = re.search(r'webhook_url="([^"]+)"', blocks[PHONE_APP].text)
    assert token and webhook
    signature = RequestValidator(token.group(1)).compute_signature(webhook.group(1), call)
    form = [f"--post={k}={v}" for k, v in call.items()]
    through_proxy = ["--header=Host:voice.example.com", "--header=X-Forwarded-Proto:https"]
    answered, unsigned, heard = await box.probes(
        ["http", "http://127.0.0.1:8000/voice", *form, *through_proxy,
         f"--header=X-Twilio-Signature:{signature}"],
        ["http", "http://127.0.0.1:8000/voice", *form, *through_proxy],
        ["twilio", "ws://127.0.0.1:8000/twilio"])
    assert answered["status"] == 200 and answered["type"].startswith("text/xml"), answered
    assert ET.canonicalize(answered["body"], strip_text=True) == \
        ET.canonicalize(blocks[TWIML].text, strip_text=True), answered["body"]
    assert unsigned["status"] == 403, unsigned
    assert heard["media"] > 0 and heard["marks"] > 0, heard


#: the admit hook's names: the app it is added to, its imports, and the token a call carries
ADMIT_PRELUDE = YOUR_APP + """
from asgi_audio_proxy import AudioProxyMiddleware
from asgi_audio_proxy.dialects.twilio import twilio_dialect
from asgi_audio_proxy.edge.admission import Denied

CALL_TOKEN = "call-token-1"
"""


@HANDLERS.runs(ADMIT, group="twilio")
async def twilio_admit(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """A call whose ``start`` carries the token talks; one with another is closed with 1008."""
    await simulator(box)
    await serve_app(box, tmp, blocks[ADMIT].python(prelude=ADMIT_PRELUDE), UVICORN_8000)
    url = "ws://127.0.0.1:8000/twilio"
    refused, heard = await box.probes(["twilio", url, "--param=token=guess", "--param=from=+15550100"],
                                      ["twilio", url, "--param=token=call-token-1", "--param=from=+15550100"])
    assert refused["close_code"] == 1008 and refused["media"] == 0, refused
    assert heard["media"] > 0 and heard["marks"] > 0, heard


# -- upstreams.md ----------------------------------------------------------------------------

UPSTREAMS = "docs/upstreams.md"
KIND_SERVE = (UPSTREAMS, "asgi-audio-proxy serve --upstream-kind realtime --upstream"
                         " ws://127.0.0.1:8000/v1/realtime --slots 4")
KIND_PYTHON = (UPSTREAMS, "from asgi_audio_proxy import AudioProxy, ProxyConfig")
POOL_FILE = (UPSTREAMS, "[[upstream]]")
#: a Realtime server for the kind to front: "another asgi-audio-proxy's /v1/realtime", on every
#: loopback address at :8000 (``127.0.0.1`` and ``gpu-2``), in front of a simulator
REALTIME_SERVER = "asgi-audio-proxy serve --host 0.0.0.0 --port 8000 --upstream http://127.0.0.1:32550"


DEMO_GATEWAY = (UPSTREAMS, "CUDA_VISIBLE_DEVICES=0 PYTHONPATH=. python worker.py --port 22400 --gpu-id 0"
                           " --worker-index 0 &")
DEMO_SERVE = (UPSTREAMS, "asgi-audio-proxy serve --upstream-kind minicpm-demo --upstream http://127.0.0.1:8006"
                         " --slots 1")
HANDLERS.cannot_run(DEMO_GATEWAY, "MiniCPM-o-Demo's worker and gateway run in its own checkout, on a GPU, "
                                  "with the model's weights; the next block's test runs `asgi-audio-proxy "
                                  "simulate --kind minicpm-demo` in their place")


@HANDLERS.runs(DEMO_SERVE)
async def minicpm_demo_gateway(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The proxy in front of the MiniCPM-o-Demo gateway, as the page runs it, with ``asgi-audio-proxy
    simulate --kind minicpm-demo`` playing the gateway on ``127.0.0.1:8006``: a client is served."""
    await (await box.start("asgi-audio-proxy simulate --kind minicpm-demo")).line(LISTENING)
    async with box.serving(blocks[DEMO_SERVE].commands()[0], LISTENING):
        await ready(box, "ws://127.0.0.1:8001/audio_proxy")


@HANDLERS.runs(KIND_SERVE, KIND_PYTHON, POOL_FILE)
async def upstream_kinds(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The realtime kind by flags and in Python, in front of a Realtime server at
    ``127.0.0.1:8000``; then the pool file, as the page runs it (``serve --upstreams-file
    pool.toml``), with ``gpu-1`` a simulator, ``gpu-2`` the Realtime server and its key in
    ``GPU2_KEY``: each of two clients at once gets a model server of its own."""
    await box.simulators("127.0.0.1:32550", "gpu-1:32550")
    await (await box.start(REALTIME_SERVER)).line(LISTENING)
    async with box.serving(blocks[KIND_SERVE].commands()[0], LISTENING):
        await ready(box, "ws://127.0.0.1:8001/audio_proxy")
    app = await serve_app(box, tmp, blocks[KIND_PYTHON].python(epilogue="app = proxy"),
                          "uvicorn your_app:app --host 0.0.0.0 --port 8001")
    await ready(box, "ws://127.0.0.1:8001/")
    await app.stop()
    (tmp / "pool.toml").write_text(blocks[POOL_FILE].text)
    async with box.serving("asgi-audio-proxy serve --upstreams-file pool.toml", LISTENING, cwd=tmp,
                           env={"GPU2_KEY": "sk-any"}):
        await ready(box, "ws://127.0.0.1:8001/audio_proxy")


DUPLEX_SERVER = (UPSTREAMS, "vllm-omni serve openbmb/MiniCPM-o-4_5 --omni --deploy-config "
                            "vllm_omni/deploy/minicpmo_4_5.yaml \\")
HANDLERS.cannot_run(DUPLEX_SERVER, "vLLM-Omni's own server needs a GPU and vllm; the next block's "
                                   "simulator stands in for it, and is run")
DUPLEX_PROXY = (UPSTREAMS, "asgi-audio-proxy simulate --kind vllm-duplex --port 8099")


@HANDLERS.runs(DUPLEX_PROXY)
async def vllm_duplex_kind(blocks: Blocks, box: Sandbox, tmp: Path) -> None:
    """The duplex simulator on :8099 and the proxy of the vllm-duplex kind in front of it: a
    client is ready (its conversation opened on the simulator, voice and all)."""
    simulate, proxy = blocks[DUPLEX_PROXY].commands()
    await (await box.start(simulate)).line(LISTENING)
    async with box.serving(proxy, LISTENING):
        await ready(box, "ws://127.0.0.1:8001/audio_proxy")
