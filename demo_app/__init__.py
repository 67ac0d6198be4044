"""Examples that run asgi-audio-proxy: ``python -m demo_app`` (the voice demo) and
``audio_proxy_example.py`` (the original document's FastAPI server).

Nothing here is library code; the demo itself ships in the package (``asgi_audio_proxy.demo.server``),
so ``asgi-audio-proxy demo`` works from an installed wheel too.
"""

from __future__ import annotations

__all__: list[str] = []
