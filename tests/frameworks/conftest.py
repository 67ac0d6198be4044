"""Shared parts of the voice-agent framework tests: the proxy in front of the simulator on
loopback, with every Realtime event it sends kept, and real speech (``espeak-ng``) at 24 kHz, the
Realtime rate."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Scope

from asgi_audio_proxy.audio.resample import Resampler
from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.base import ClientDialect, Frame
from asgi_audio_proxy.dialects.realtime import realtime_dialect
from asgi_audio_proxy.edge.middleware import AudioProxyMiddleware
from asgi_audio_proxy.events import ServerEvent
from asgi_audio_proxy.simulator.app import UpstreamSimulator
from tests.conftest import running_simulator
from tests.dialects.test_realtime_sdk import check_key, not_found
from tests.servers import serve
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

RATE_HZ = 24_000


class Sent:
    """Every event the proxy sent its Realtime clients, parsed."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.model: UpstreamSimulator | None = None  # the model server behind the proxy

    def dialect(self, scope: Scope, config: ProxyConfig) -> ClientDialect:
        """The Realtime dialect, each frame it encodes kept on its way out."""
        dialect = realtime_dialect(scope, config)
        encode = dialect.send

        def send(event: ServerEvent) -> list[Frame]:
            frames = encode(event)
            self.events += [json.loads(frame) for frame in frames if isinstance(frame, str)]
            return frames

        dialect.send = send  # type: ignore[method-assign]
        return dialect

    @property
    def ends(self) -> list[tuple[str, str | None]]:
        """Each reply's end as the proxy told it (``response.done``): its status and reason."""
        dones = [event["response"] for event in self.events if event["type"] == "response.done"]
        return [(d["status"], (d.get("status_details") or {}).get("reason")) for d in dones]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == "error"]


@contextlib.asynccontextmanager
async def watched_proxy(chunk_delay_s: float | None = None) -> AsyncIterator[tuple[str, Sent]]:
    """The simulator behind the proxy's ``/v1/realtime``; yields the SDKs' base URL
    (``ws://…/v1``) and what the proxy sent. ``chunk_delay_s``: the simulator's time between
    reply chunks (a longer reply to talk over)."""
    sent = Sent()
    async with running_simulator(**({} if chunk_delay_s is None else {"chunk_delay_s": chunk_delay_s})) as up:
        sent.model = up.sim
        middleware = AudioProxyMiddleware(
            not_found, config=ProxyConfig(upstream_url=up.url, chunk_duration=0.2),
            dialects={"/v1/realtime": sent.dialect}, authenticate=check_key)
        try:
            async with serve("uvicorn", middleware) as port:
                yield f"ws://127.0.0.1:{port}/v1", sent
        finally:
            await middleware.proxy.aclose()


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Two spoken questions, PCM16 mono at 24 kHz."""
    reason = espeak_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    bank = SpeechBank(Path(tmp_path_factory.mktemp("speech")))
    pcm = [to_pcm(bank.utterance(text).samples) for text in ("What is the weather like today?",
                                                              "And what about tomorrow morning?")]
    return [Resampler(16_000, RATE_HZ).feed(clip) for clip in pcm]
