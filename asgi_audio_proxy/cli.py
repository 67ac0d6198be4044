"""The ``asgi-audio-proxy`` console script: ``serve``, ``simulate`` and friends.

Owns: argv parsing and logging setup for the commands. Must not: hold logic a library user
needs, or act on import (everything starts from :func:`main`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from starlette.applications import Starlette

    from .config import ProxyConfig
    from .middleware import AudioProxyMiddleware

    config = ProxyConfig(upstream_url=args.upstream, chunk_duration=args.chunk_duration)
    # an empty Starlette app answers every other path with 404 (HTTP) or a close (WebSocket)
    app = AudioProxyMiddleware(Starlette(), path=args.path, config=config)
    print(f"asgi-audio-proxy: ws://{args.host}:{args.port}{args.path} -> {args.upstream}",
          file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                ws_max_size=config.max_message_bytes)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .simulator import run_simulator

    print(f"asgi-audio-proxy: upstream simulator {args.version} on http://{args.host}:{args.port}",
          file=sys.stderr)
    run_simulator(host=args.host, port=args.port, version=args.version)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asgi-audio-proxy",
        description="Put a MiniCPM-o voice model behind one WebSocket.")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="logging level (debug shows the protocol flow; default info)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the proxy alone on uvicorn",
                           description="Serve the audio proxy on one WebSocket path.")
    serve.add_argument("--upstream", default="http://127.0.0.1:32550",
                       help="model server base URL (default http://127.0.0.1:32550)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8001, help="port to bind (default 8001)")
    serve.add_argument("--path", default="/audio_proxy",
                       help="WebSocket path clients connect to (default /audio_proxy)")
    serve.add_argument("--chunk-duration", type=float, default=1.0,
                       help="seconds of audio gathered before it goes upstream, a multiple of "
                            "0.2 (default 1.0; messages are always 200 ms)")
    serve.set_defaults(run=_serve)

    simulate = sub.add_parser("simulate", help="run the MiniCPM-o upstream simulator",
                              description="A protocol-faithful stand-in for the MiniCPM-o model "
                                          "server: no GPU needed.")
    simulate.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    simulate.add_argument("--port", type=int, default=32550, help="port (default 32550)")
    simulate.add_argument("--version", choices=["2.6", "4.5"], default="2.6",
                          help="model server version to imitate (default 2.6: 24 kHz replies)")
    simulate.set_defaults(run=_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asgi-audio-proxy`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
