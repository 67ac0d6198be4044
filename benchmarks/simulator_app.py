"""``python -m benchmarks.simulator_app MODULE:CLASS [NAME=N ...]``: a simulator, on a free port.

Owns: importing one simulator app class, building it with whole-number keyword arguments (its
capacity, for one: ``asgi-audio-proxy simulate`` builds each simulator with its real server's,
one worker or four sessions, and a benchmark needs room for all its sessions at once), and
serving it under uvicorn on 127.0.0.1, port 0 (the parent reads the port from the listening
socket: :mod:`benchmarks.commands`). Must not: measure anything.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

import uvicorn

__all__ = ["main"]


def _option(text: str) -> tuple[str, int]:
    name, _, value = text.partition("=")
    if not name.isidentifier() or not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=N (a whole number), got {text!r}")
    return name, int(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simulator_app")
    parser.add_argument("target", help="the app class, as module:Class")
    parser.add_argument("options", nargs="*", type=_option, help="its keyword arguments, NAME=N")
    args = parser.parse_args(argv)
    module, _, name = args.target.partition(":")
    app = getattr(importlib.import_module(module), name)(**dict(args.options))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    uvicorn.run(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
