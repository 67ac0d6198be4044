"""A WebRTC call through ``asgi-audio-proxy serve`` to the real model server's code
(``shared/real_upstream``, its stand-in model replying ``Turn N: heard ...`` with a 600 Hz tone
at 24 kHz): an aiortc peer (``tests/webrtc/peer.py``) posts its offer to ``/v1/realtime/calls``,
says a tone, and hears the reply on its track.

Needs ``MINICPM_GIT_DIR`` and the kit, like ``tests/test_real_upstream.py``; skipped otherwise.
"""

from __future__ import annotations

import pytest

from tests.signals import dominant_frequency_hz, silence, tone
from tests.test_real_upstream import pytestmark as real_upstream_marks
from tests.test_real_upstream import real_stack
from tests.webrtc.peer import RATE_HZ, peer

pytestmark = real_upstream_marks


async def test_a_webrtc_call_takes_a_whole_turn_through_the_real_server() -> None:
    # the kit's VAD stand-in hears a window of sound as speech, and a turn once 1.5 s is quiet
    utterance = tone(440, 1.5, RATE_HZ) + silence(1.6, RATE_HZ)
    async with real_stack() as url, peer() as p:
        response = await p.call(url.replace("ws://", "http://").removesuffix("/audio_proxy"))
        assert response.status_code == 201, response.text
        await p.wait_for("session.created", timeout_s=20)
        await p.wait_until(lambda: len(p.heard) > 5)  # the media flow both ways
        p.mic.say(utterance)
        started = await p.wait_for("output_audio_buffer.started", timeout_s=40)
        heard_from = p.heard[-1][0]
        done = await p.wait_for("response.done", timeout_s=40)
        stopped = await p.wait_for("output_audio_buffer.stopped", timeout_s=20)
        transcript = await p.wait_for("response.output_audio_transcript.done")
        reply = p.audio_since(heard_from)
        print(f"{transcript['transcript']!r}: {len(reply) // 2} samples at 48 kHz on the track, "
              f"{dominant_frequency_hz(reply, RATE_HZ):.1f} Hz")
    assert done["response"]["status"] == "completed"
    assert started["response_id"] == stopped["response_id"] == done["response"]["id"]
    assert transcript["transcript"].startswith("Turn 1: heard")
    # three 0.5 s chunks of 600 Hz: at least a second of it reached the track
    assert len(reply) >= RATE_HZ * 2
    assert dominant_frequency_hz(reply, RATE_HZ) == pytest.approx(600, abs=10)
