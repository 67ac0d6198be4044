"""``python -m demo_app [--port 8001] [--upstream URL]``: the same as ``asgi-audio-proxy demo``."""

from __future__ import annotations

import sys

from asgi_audio_proxy.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main(["demo", *sys.argv[1:]]))
