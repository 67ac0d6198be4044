"""The ``asgi-audio-proxy`` console script: ``serve``, ``simulate`` and friends.

Owns: argv parsing and logging setup for the commands. Must not: hold logic a library user
needs, or act on import (everything starts from :func:`main`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .edge.settings import ENV_PREFIX, add_settings
from .upstreams.registry import KIND_NAMES, named_kind

if TYPE_CHECKING:
    from .demo.server import DemoServer

__all__ = ["main"]

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LEVEL_ENV = ENV_PREFIX + "LOG_LEVEL"
#: ``simulate --kind``: each simulated server and the port its real one listens on
SIMULATOR_PORTS = {"minicpm": 32550, "vllm-duplex": 8099, "minicpm-demo": 8006}


def _serve(args: argparse.Namespace) -> int:
    from .edge.serving import build_server_app, serve
    from .edge.settings import SettingError, resolve_settings

    try:
        settings = resolve_settings(args, args.environ)
        # the workers build their own: nothing is built here to be forked
        app = build_server_app(settings, args.environ) if settings.workers == 1 else None
    except (SettingError, ValueError, ImportError, OSError) as exc:
        args.fail(str(exc))
    upstreams = (f"the servers of {settings.upstreams_file}" if settings.upstreams_file
                 else " ".join(settings.upstream))
    if settings.upstream_kind != "minicpm" and not settings.upstreams_file:
        upstreams += f" ({settings.upstream_kind})"
    shared = f", leases in {settings.redis}" if settings.redis else ""
    base = f"ws://{settings.host}:{settings.port}"
    print(f"asgi-audio-proxy: {base}{settings.path} -> {upstreams}{shared}", file=sys.stderr)
    if settings.realtime_path:
        print(f"  OpenAI Realtime: {base}{settings.realtime_path}", file=sys.stderr)
    if settings.twilio_path:
        print(f"  Twilio Media Streams: {base}{settings.twilio_path}", file=sys.stderr)
    if app is None:
        from .edge.workers import run_workers

        try:
            return run_workers(settings, args.environ, workers=settings.workers,
                               log_level=args.log_level,
                               announce=lambda line: print(line, file=sys.stderr, flush=True))
        except OSError as exc:
            args.fail(str(exc))
            return 2
    serve(app, app.proxy, host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    if args.kind == "vllm-duplex":
        from .simulator.vllm_duplex import run_duplex_simulator

        port = SIMULATOR_PORTS[args.kind] if args.port is None else args.port
        print(f"asgi-audio-proxy: vLLM-Omni duplex simulator on ws://{args.host}:{port}/v1/realtime",
              file=sys.stderr)
        run_duplex_simulator(host=args.host, port=port)
        return 0
    if args.kind == "minicpm-demo":
        from .simulator.minicpm_demo import run_gateway_simulator

        port = SIMULATOR_PORTS[args.kind] if args.port is None else args.port
        print(f"asgi-audio-proxy: MiniCPM-o-Demo gateway simulator on http://{args.host}:{port}",
              file=sys.stderr)
        run_gateway_simulator(host=args.host, port=port, log_level=args.log_level)
        return 0
    from .simulator.app import run_simulator

    port = SIMULATOR_PORTS[args.kind] if args.port is None else args.port
    print(f"asgi-audio-proxy: upstream simulator {args.version} on http://{args.host}:{port}",
          file=sys.stderr)
    run_simulator(host=args.host, port=port, version=args.version)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo.server import HealthChecksUnlogged, run_demo

    running: set[asyncio.Task[None]] = set()

    def started(demo: DemoServer) -> None:
        if not args.talk:
            _announce_demo(demo, args.upstream)
            return
        # the talk runs before anyone is told the URL, so it never takes a visitor's place
        task = asyncio.get_running_loop().create_task(_demo_talk(demo, args.talk, args.upstream))
        running.add(task)
        task.add_done_callback(running.discard)

    if args.log_level != "debug":  # one line per upstream request drowns the session lines
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("uvicorn.access").addFilter(HealthChecksUnlogged())
    try:
        kind = named_kind(args.upstream_kind, api_key=args.upstream_api_key, model=args.upstream_model)
        if args.upstream is not None:
            kind.check_url(args.upstream)
        if args.upstream is None and args.upstream_kind not in ("minicpm", "vllm-duplex", "minicpm-demo"):
            raise ValueError(f"--upstream-kind {args.upstream_kind} needs --upstream URL: the built-in "
                             "simulators play the MiniCPM-o, vLLM-Omni duplex and MiniCPM-o-Demo "
                             "servers only")
    except ValueError as exc:
        args.fail(str(exc))
    run_demo(args.host, args.port, upstream_url=args.upstream, chunk_duration=args.chunk_duration,
             log_level=args.log_level, on_started=started, barge_in=args.barge_in, kind=kind)
    return 0


def _announce_demo(demo: DemoServer, upstream_url: str | None) -> None:
    upstream = upstream_url or "the built-in simulator (it echoes what it hears)"
    print(f"asgi-audio-proxy demo: open {demo.url} and press Start talking\n"
          f"  proxy: {demo.proxy_url} -> {upstream}\n"
          f"  OpenAI Realtime apps: websocket_base_url={demo.realtime_url.removesuffix('/realtime')}"
          f"  (the openai SDK; Agents SDKs: url={demo.realtime_url})\n"
          f"  Twilio Media Streams: {demo.twilio_url}\n"
          f"  try:   asgi-audio-proxy client --proxy-url {demo.proxy_url}\n"
          f"  Ctrl-C stops", flush=True)


#: how long the demo's start-up talk's session may take to end before the page is announced anyway
_TALK_ENDS_S = 10.0


async def _demo_talk(demo: DemoServer, turns: int, upstream_url: str | None) -> None:
    from .client.audio import generated_utterance
    from .client.console import Console
    from .client.talk import TalkFailed, TalkOptions, talk

    print(f"asgi-audio-proxy demo: before the page is announced, a test client says {turns} "
          f"generated turn(s) to {demo.proxy_url} ...", flush=True)
    options = TalkOptions(proxy_url=demo.proxy_url, mode="generated",
                          utterance=generated_utterance(1.0), turns=turns, pause_s=0.5)
    try:
        code = await talk(options, Console(sys.stdout, sys.stderr, live=False), None)
    except TalkFailed as exc:
        print(f"asgi-audio-proxy demo: the test client failed: {exc}", file=sys.stderr, flush=True)
    else:
        verdict = "every turn got a reply" if code == 0 else "some turns got no reply"
        print(f"asgi-audio-proxy demo: {verdict}; the test client has left.", flush=True)
    try:  # its session has ended and freed the model server, so the first visitor is not queued
        async with asyncio.timeout(_TALK_ENDS_S):
            await demo.wait_idle()
    except TimeoutError:
        print(f"asgi-audio-proxy demo: the test client's session is still open after "
              f"{_TALK_ENDS_S:.0f} s", file=sys.stderr, flush=True)
    _announce_demo(demo, upstream_url)


def _client(args: argparse.Namespace) -> int:
    from .audio import AudioFormatError
    from .client.audio import generated_utterance, wav_file_to_16k_mono
    from .client.console import Console
    from .client.microphone import MicrophoneCapture, MicrophoneUnavailable, open_sounddevice
    from .client.talk import TalkFailed, TalkOptions, talk

    mode, path = args.mode[0], args.mode[1:]
    wants_path = 1 if mode == "file" else 0
    if mode not in ("generated", "file", "microphone") or len(path) != wants_path:
        print("asgi-audio-proxy client: --mode is 'generated', 'file PATH' or 'microphone'",
              file=sys.stderr)
        return 2
    microphone, utterance = None, b""
    try:
        if mode == "generated":
            utterance = generated_utterance(args.tone_seconds)
        elif mode == "file":
            utterance = wav_file_to_16k_mono(Path(path[0]).read_bytes())
        else:
            factory, rate = open_sounddevice()
            microphone = MicrophoneCapture(factory, rate)
    except (OSError, AudioFormatError, MicrophoneUnavailable) as exc:
        print(f"asgi-audio-proxy client: {exc}", file=sys.stderr)
        return 2
    config = {k: v for k, v in (("assistantPrompt", args.assistant_prompt),
                                ("vadThreshold", args.vad_threshold)) if v is not None}
    turns = args.turns if args.turns is not None else {"generated": 3, "file": 1}.get(mode)
    options = TalkOptions(proxy_url=args.proxy_url, mode=mode, utterance=utterance, turns=turns,
                          pause_s=args.pause, reply_timeout_s=args.reply_timeout,
                          config=config or None, save=args.save)
    console = Console(sys.stdout, sys.stderr, live=sys.stderr.isatty())
    try:
        return asyncio.run(talk(options, console, microphone))
    except (TalkFailed, MicrophoneUnavailable) as exc:
        print(f"asgi-audio-proxy client: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="asgi-audio-proxy",
        description="Put a MiniCPM-o voice model behind one WebSocket.")
    parser.add_argument("--log-level", default=None, choices=LOG_LEVELS,
                        help="logging level (debug shows the protocol flow; default info; "
                             f"env {LOG_LEVEL_ENV})")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="run the proxy alone on uvicorn",
        description="Serve the audio proxy on one WebSocket path. Each model server holds one "
                    "conversation at a time; later clients queue (queued, then ready). Every "
                    "flag can also be set by its ASGI_AUDIO_PROXY_* environment variable; a "
                    "flag wins over the variable.")
    add_settings(serve)
    serve.set_defaults(run=_serve, subparser=serve)

    simulate = sub.add_parser("simulate",
                              help="run an upstream simulator (MiniCPM-o, its demo gateway, vLLM-Omni)",
                              description="A protocol-faithful stand-in for a model server: "
                                          "no GPU needed.")
    simulate.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    simulate.add_argument("--kind", choices=list(SIMULATOR_PORTS), default="minicpm",
                          help="the server to imitate: minicpm (the MiniCPM-o web-demo server; the "
                               "default), vllm-duplex (vLLM-Omni's full-duplex /v1/realtime) or "
                               "minicpm-demo (the MiniCPM-o-Demo gateway's /v1/realtime?mode=audio)")
    simulate.add_argument("--port", type=int, default=None,
                          help="port (default: the server's own, 32550 for minicpm, 8099 for "
                               "vllm-duplex, 8006 for minicpm-demo)")
    simulate.add_argument("--version", choices=["2.6", "4.5"], default="2.6",
                          help="model server version to imitate (default 2.6: 24 kHz replies)")
    simulate.set_defaults(run=_simulate)
    _add_demo_parser(sub)
    _add_client_parser(sub)
    return parser


def _add_demo_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    demo = sub.add_parser(
        "demo", help="a voice page, the proxy and a simulator on one port",
        description="Serve a web page you can talk to, the proxy at /audio_proxy and (unless "
                    "--upstream is given) the upstream simulator, all on one port. Open the "
                    "printed URL in a browser; Ctrl-C stops everything.")
    demo.add_argument("--host", default="127.0.0.1",
                      help="address to bind (default 127.0.0.1; 0.0.0.0 to reach it from a phone, "
                           "which then needs HTTPS or a browser flag for the microphone)")
    demo.add_argument("--port", type=int, default=8001, help="port to bind; 0 picks one (default 8001)")
    demo.add_argument("--upstream", default=None, metavar="URL",
                      help="a real model server, e.g. http://127.0.0.1:32550 (default: the "
                           "built-in simulator, which answers with what it heard)")
    demo.add_argument("--upstream-kind", default="minicpm", choices=KIND_NAMES,
                      help="what --upstream is: minicpm (the MiniCPM-o web-demo server; the "
                           "default), realtime (any server that speaks the OpenAI Realtime API), "
                           "vllm-duplex (vLLM-Omni's full duplex) or minicpm-demo (the MiniCPM-o-Demo "
                           "gateway); without --upstream, the kind's simulator")
    demo.add_argument("--upstream-api-key", default=None, metavar="KEY",
                      help="a realtime server's API key (Authorization: Bearer KEY)")
    demo.add_argument("--upstream-model", default=None, metavar="MODEL",
                      help="the model a realtime server is asked for (?model=MODEL)")
    demo.add_argument("--chunk-duration", type=float, default=0.2,
                      help="seconds of audio gathered before it goes upstream, a multiple of 0.2 "
                           "(default 0.2: lowest latency)")
    demo.add_argument("--barge-in", choices=["off", "control", "voice"], default="voice",
                      help="how a reply is interrupted: voice (talk over it; the default), "
                           "control (the Stop button only) or off")
    demo.add_argument("--talk", type=int, default=2, metavar="TURNS",
                      help="once listening, and before the page's URL is printed, run the test "
                           "client for this many generated turns and print the transcript "
                           "(default 2; 0 to skip)")
    demo.set_defaults(run=_demo)


def _add_client_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    client = sub.add_parser(
        "client", help="talk to a running proxy from the terminal",
        description="Stream audio to a proxy at real-time pace, print the reply's transcript and "
                    "per-turn latency (end of your audio to first reply audio), and optionally "
                    "save the reply audio. Exit code 0 only if every turn got a reply.")
    client.add_argument("--proxy-url", default="ws://127.0.0.1:8001/audio_proxy",
                        help="the proxy's WebSocket URL (default ws://127.0.0.1:8001/audio_proxy)")
    client.add_argument("--mode", nargs="+", default=["generated"], metavar="MODE",
                        help="'generated' (a speech-like tone burst per turn, default), "
                             "'file PATH' (any PCM16 WAV, converted to 16 kHz mono) or "
                             "'microphone' (needs the sounddevice package)")
    client.add_argument("--turns", type=int, default=None,
                        help="how often the utterance is said (default 3 generated, 1 file); each "
                             "reply is a turn, also one that comes while a file is still being "
                             "sent; microphone: replies to wait for (default: until Ctrl-C)")
    client.add_argument("--save", type=Path, default=None, metavar="WAV",
                        help="write every reply's audio to this 16 kHz mono WAV file")
    client.add_argument("--pause", type=float, default=1.0,
                        help="seconds of silence after a reply before the next turn (default 1.0)")
    client.add_argument("--reply-timeout", type=float, default=15.0,
                        help="seconds to wait for a reply to start before the turn counts as "
                             "unanswered (default 15)")
    client.add_argument("--tone-seconds", type=float, default=1.2,
                        help="length of each generated utterance (default 1.2)")
    client.add_argument("--assistant-prompt", default=None,
                        help="send a config message with this assistantPrompt first")
    client.add_argument("--vad-threshold", type=float, default=None,
                        help="send a config message with this vadThreshold (0-1) first")
    client.set_defaults(run=_client)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``prog: error: what (see prog --help)``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``asgi-audio-proxy`` command.

    Args:
        argv: the arguments (``sys.argv[1:]`` by default).
        environ: where ``ASGI_AUDIO_PROXY_*`` settings are read (``os.environ`` by default).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.environ = os.environ if environ is None else environ
    command = args.subparser if hasattr(args, "subparser") else parser
    args.fail = command.error
    if args.log_level is None:
        args.log_level = args.environ.get(LOG_LEVEL_ENV, "info").strip().lower() or "info"
        if args.log_level not in LOG_LEVELS:
            parser.error(f"{LOG_LEVEL_ENV}={args.log_level!r}: expected one of {', '.join(LOG_LEVELS)}")
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
