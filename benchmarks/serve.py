"""Entry point of every server process a benchmark starts: ``python -m benchmarks.serve KIND``.

Owns: binding 127.0.0.1 port 0, printing ``PORT <n>`` on stdout, and running one app under
uvicorn in this process, so each side's CPU and memory can be read per process (psutil).
Kinds: ``proxy`` (:class:`asgi_audio_proxy.AudioProxy`, ``chunk_duration`` 0.2; with
``--dialects``, :class:`asgi_audio_proxy.AudioProxyMiddleware` serving the native protocol on
``/audio``, the Realtime dialect on ``/v1/realtime`` (and its WebRTC calls on
``/v1/realtime/calls``) and the Twilio one on ``/twilio``),
``bare`` (:mod:`benchmarks.bare_relay`), ``load-upstream`` (:mod:`benchmarks.load_upstream`) and
``simulator`` (:class:`asgi_audio_proxy.simulator.app.UpstreamSimulator`).
Must not: measure anything; the parent reads this process from outside.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import Any

import uvicorn

#: the ``chunk_duration`` the latency figures are taken at
CHUNK_DURATION_S = 0.2


def build_app(args: argparse.Namespace) -> Any:
    if args.kind == "load-upstream":
        from .load_upstream import LoadUpstream

        return LoadUpstream()
    if args.kind == "simulator":
        from asgi_audio_proxy.simulator.app import UpstreamSimulator

        return UpstreamSimulator(first_chunk_delay_s=args.first_chunk_delay_s,
                                 chunk_delay_s=args.chunk_delay_s, reply_chunks=args.reply_chunks,
                                 multi_conversation=True)
    upstream_ws = "ws" + args.upstream[len("http"):]
    if args.kind == "bare":
        from .bare_relay import bare_relay_app

        return bare_relay_app(upstream_ws)
    import httpx

    from asgi_audio_proxy import AudioProxy, ProxyConfig

    if args.stamp_replies:
        _stamp_reply_arrivals()
    config = ProxyConfig(upstream_url=args.upstream, chunk_duration=args.chunk_duration,
                         max_sessions=args.max_sessions, max_loop_lag_s=args.max_loop_lag,
                         **({"barge_in": args.barge_in} if args.barge_in else {}))
    client = None
    if args.pool == "unbounded":
        # httpx's default pool (100 connections) cannot hold more than 100 open /completions
        client = httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=None,
                                                                        max_keepalive_connections=None))
    # the load upstream holds any number of conversations (a bank of model servers behind one
    # URL), so every session is leased at once: the figures are the proxy's, not a queue's
    from tests.fakes import OpenLeaser  # the tests' leaser for a server of many conversations

    leaser = OpenLeaser(args.upstream)
    if args.dialects:
        return _dialects_app(config, client, leaser)
    return AudioProxy(config, http_client=client, leaser=leaser)


def _dialects_app(config: Any, client: Any, leaser: Any) -> Any:
    """One proxy behind the middleware, a dialect per path, as an app that serves them all."""
    from starlette.responses import PlainTextResponse

    from asgi_audio_proxy import AudioProxyMiddleware
    from asgi_audio_proxy.dialects.realtime import realtime_dialect
    from asgi_audio_proxy.dialects.twilio import twilio_dialect

    async def rest(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # the middleware leaves lifespan to the app: end here
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await middleware.proxy.shutdown()
            await middleware.proxy.aclose()
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "http" and calls is not None and scope["path"] == "/v1/realtime/calls":
            await calls(scope, receive, send)
        elif scope["type"] == "http":  # /health and anything else
            await PlainTextResponse("ok\n")(scope, receive, send)

    middleware = AudioProxyMiddleware(rest, path="/audio", config=config, http_client=client,
                                      leaser=leaser, dialects={"/v1/realtime": realtime_dialect,
                                                               "/twilio": twilio_dialect})
    try:  # WebRTC calls on /v1/realtime/calls, with the webrtc extra
        from asgi_audio_proxy.edge.calls import RealtimeCalls
    except ImportError:
        calls = None
    else:
        calls = RealtimeCalls(middleware.proxy)
    return middleware


def _stamp_reply_arrivals() -> None:
    """Append the moment each SSE event reached the proxy to its text (reply-path runs only).

    Wraps the MiniCPM adapter's ``parse_reply_data`` in this process, so the stamp is
    taken as the event leaves the SSE reader, before any of the proxy's own work (JSON, base64,
    WAV, resampling, the client send). The load upstream's texts are its own send time; the
    client then sees ``"<upstream send>|<proxy arrival>"``.
    """
    import time
    from dataclasses import replace

    from asgi_audio_proxy.upstreams.minicpm import transport as upstream
    from asgi_audio_proxy.upstreams.minicpm.wire import ReplyMessage, UpstreamEvent

    parse = upstream.parse_reply_data

    def stamped(data: str) -> UpstreamEvent:
        arrived = time.perf_counter()
        event = parse(data)
        if isinstance(event, ReplyMessage) and event.text[:1].isdigit():
            return replace(event, text=f"{event.text}|{arrived:.6f}")
        return event

    upstream.parse_reply_data = stamped  # type: ignore[assignment]


def _profiled(app: Any, path: str) -> Any:
    """Run ``app`` under cProfile; the stats are written when lifespan shutdown arrives."""
    import cProfile

    profiler = cProfile.Profile()

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def receive_and_dump() -> Any:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                profiler.disable()
                profiler.dump_stats(path)
            return message

        await app(scope, receive_and_dump, send)

    profiler.enable()
    return wrapper


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve")
    parser.add_argument("kind", choices=["proxy", "bare", "load-upstream", "simulator"])
    parser.add_argument("--upstream", default="http://127.0.0.1:32550")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--http", choices=["h11", "httptools"], default="h11")
    parser.add_argument("--ws", choices=["flow", "websockets", "websockets-sansio", "wsproto"],
                        default="flow", help="uvicorn's WebSocket protocol; flow: the one serve runs "
                        "(asgi_audio_proxy.edge.wsflow)")
    parser.add_argument("--ws-deflate", action="store_true",
                        help="let uvicorn accept permessage-deflate (its own default)")
    parser.add_argument("--pool", choices=["default", "unbounded"], default="unbounded")
    parser.add_argument("--stamp-replies", action="store_true",
                        help="proxy: stamp each SSE event's arrival into its text (reply path)")
    parser.add_argument("--barge-in", choices=["off", "control", "voice"], default=None,
                        help="proxy: ProxyConfig.barge_in (the library's default when omitted)")
    parser.add_argument("--chunk-duration", type=float, default=CHUNK_DURATION_S,
                        help="proxy: ProxyConfig.chunk_duration, forwarded to the minicpm kind")
    parser.add_argument("--max-sessions", type=int, default=None,
                        help="proxy: ProxyConfig.max_sessions (no limit when omitted)")
    parser.add_argument("--max-loop-lag", type=float, default=None,
                        help="proxy: ProxyConfig.max_loop_lag_s (not measured when omitted)")
    parser.add_argument("--dialects", action="store_true",
                        help="proxy: native on /audio, Realtime on /v1/realtime, Twilio on /twilio")
    parser.add_argument("--profile", metavar="PATH", help="write cProfile stats here at shutdown")
    parser.add_argument("--first-chunk-delay-s", type=float, default=0.05)
    parser.add_argument("--chunk-delay-s", type=float, default=0.02)
    parser.add_argument("--reply-chunks", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say TCP;
    # with Nagle on, replies wait for the peer's next frame to carry the ACK (~20 ms)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if os.environ.get("BENCH_SNDBUF"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(os.environ["BENCH_SNDBUF"]))
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    app = build_app(args)
    if args.profile:
        app = _profiled(app, args.profile)
    ws: Any = args.ws
    if ws == "flow":  # both relays as serve runs them
        from asgi_audio_proxy.edge.wsflow import FlowWebSocketProtocol

        ws = FlowWebSocketProtocol
    config = uvicorn.Config(app, loop=args.loop, http=args.http, ws=ws,
                            ws_per_message_deflate=args.ws_deflate, log_level="warning",
                            lifespan="on" if args.kind != "bare" else "auto", backlog=4096)
    if args.kind in ("proxy", "bare"):  # both relays as serve runs them (see edge.collector)
        from asgi_audio_proxy.edge.collector import settle_collector

        settle_collector()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
