"""End to end: an aiortc client calls ``serve``'s ``POST /v1/realtime/calls``, the simulator behind.

The client is the offerer, as a browser is: a microphone track playing a tone, an ``oai-events``
data channel. A turn gives the Realtime events on the channel and the reply's audio on the
remote track; a cancel silences the track; closing the peer ends the call and frees its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asgi_audio_proxy.edge.calls import RealtimeCalls
from asgi_audio_proxy.edge.serving import build_server_app
from asgi_audio_proxy.webrtc.call import CallTimeouts
from tests.conftest import running_simulator
from tests.servers import serve_uvicorn
from tests.signals import dominant_frequency_hz, silence, tone
from tests.test_cli_serve import settings_of
from tests.timing import within

from .peer import RATE_HZ, Peer, loud, peer

#: one short turn: a 440 Hz tone, then enough quiet for the model's VAD
UTTERANCE = tone(440, 1.0, RATE_HZ) + silence(0.2, RATE_HZ)


@contextlib.asynccontextmanager
async def served(*argv: str, timeouts: CallTimeouts | None = None,
                 **simulator: Any) -> AsyncIterator[tuple[str, Any]]:
    """``serve``'s app with the simulator behind; yields its base URL and its proxy."""
    async with running_simulator(**simulator) as up:
        app = build_server_app(settings_of(["--upstream", up.url, "--max-queue", "0", *argv]))
        if timeouts is not None:
            calls = _calls(app)
            calls.settings = type(calls.settings)(timeouts=timeouts)
        try:
            async with serve_uvicorn(app) as port:
                yield f"http://127.0.0.1:{port}", app
        finally:
            await app.proxy.aclose()


def _calls(app: Any) -> RealtimeCalls:
    [route] = [r for r in app.app.router.routes if r.path.endswith("/calls")]
    calls: RealtimeCalls = route.app
    return calls


async def calls_ended(app: Any, timeout_s: float = 8) -> None:
    """Every call's task over, its place given back and its model server free."""
    tasks = list(_calls(app).calls.values())
    if tasks:
        async with asyncio.timeout(within(timeout_s)):
            await asyncio.wait(tasks)
    assert not app.proxy.sessions and app.proxy._admitted == 0
    assert not await app.proxy.leaser.would_wait()


async def turn(p: Peer) -> tuple[dict[str, Any], bytes]:
    """Speak; wait for the reply to end playing; return its response.done and its audio."""
    after = len(p.events)
    p.mic.say(UTTERANCE)
    started = await p.wait_for("output_audio_buffer.started", after=after)
    t0 = p.heard[-1][0] if p.heard else 0.0
    done = await p.wait_for("response.done", after=after)
    stopped = await p.wait_for("output_audio_buffer.stopped", after=after)
    assert started["response_id"] == stopped["response_id"] == done["response"]["id"]
    return done, p.audio_since(t0)


async def test_a_call_takes_turns_with_events_on_the_channel_and_audio_on_the_track() -> None:
    async with served() as (base, app), peer() as p:
        response = await p.call(base)
        assert response.status_code == 201, response.text
        assert response.headers["content-type"].startswith("application/sdp")
        assert response.headers["location"].startswith("/v1/realtime/calls/rtc_")
        assert (await p.wait_for("session.created"))["session"]["type"] == "realtime"
        done, audio = await turn(p)
        assert done["response"]["status"] == "completed"
        transcript = await p.wait_for("response.output_audio_transcript.done")
        assert transcript["transcript"].startswith("Turn 1:")
        assert not any(e["type"] == "response.output_audio.delta" for e in p.events)
        assert dominant_frequency_hz(audio, RATE_HZ) == pytest.approx(440, abs=10)
        done, audio = await turn(p)  # a second turn
        assert done["response"]["status"] == "completed"
        assert loud(audio)
        assert len(app.proxy.sessions) == 1
        await p.close()  # the peer goes: the call ends, its place and lease are free
        await calls_ended(app)
