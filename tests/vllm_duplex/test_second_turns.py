"""The vllm-duplex kind, two turns for the ``openai`` SDK and for a phone call: each reply at the
dialect's rate (24 kHz, and 8 kHz mu-law), at the frequency the model heard, with its text where
the dialect carries text."""

from __future__ import annotations

import base64
import functools

import pytest

from asgi_audio_proxy.audio.g711 import ulaw_to_pcm16
from tests.dialects.test_realtime_sdk import sdk_connection
from tests.dialects.twilio_peer import TwilioPeer
from tests.signals import dominant_frequency_hz, silence, tone

from .support import duplex_proxy


async def test_the_openai_sdk_has_two_turns() -> None:
    async with duplex_proxy() as d, sdk_connection(f"ws://127.0.0.1:{d.port}/v1", beta=False) as talk:
        assert (await talk.next())["type"] == "session.created"
        turns = [await talk.turn(), await talk.turn()]  # every event checked against the SDK's types
    for n, (done, audio, transcript) in enumerate(turns, start=1):
        assert done["response"]["status"] == "completed"
        assert transcript.startswith(f"Turn {n}: heard"), transcript
        assert dominant_frequency_hz(audio, 24_000) == pytest.approx(440, abs=5)
        assert audio and len(audio) % 48_000 == 0  # whole seconds at 24 kHz, as the model made them


def replies_ulaw(peer: TwilioPeer) -> dict[int, bytes]:
    """The reply audio received, by reply: each media piece is followed by its mark, ``r<N>.<k>``."""
    replies: dict[int, bytearray] = {}
    piece = b""
    for arrival in peer.arrivals:
        if arrival.event == "media":
            piece = base64.b64decode(arrival.message["media"]["payload"])
        elif arrival.event == "mark":
            reply = int(arrival.message["mark"]["name"][1:].split(".")[0])
            replies.setdefault(reply, bytearray()).extend(piece)
            piece = b""
    return {n: bytes(ulaw) for n, ulaw in replies.items()}


def has_reply(n: int, peer: TwilioPeer) -> bool:
    """Reply ``n`` has come, a second of it at least."""
    return len(replies_ulaw(peer).get(n, b"")) >= 8_000


async def test_a_phone_call_has_two_turns() -> None:
    async with duplex_proxy() as d, TwilioPeer.call(d.url("/twilio")) as peer:
        for n, freq in enumerate((440, 660), start=1):
            peer.say(tone(freq, 1.0, 8_000) + silence(1.4, 8_000))
            # a reply is whole seconds of what the model heard: at least one, 8000 samples
            await peer.wait_for(functools.partial(has_reply, n), timeout_s=20)
        await peer.stop()
    replies = replies_ulaw(peer)
    assert sorted(replies) == [1, 2]
    for n, freq in ((1, 440), (2, 660)):
        pcm = ulaw_to_pcm16(replies[n])
        if n == 1:  # whole seconds at 8 kHz, and the resampler's tail (the last reply may be cut)
            assert abs(len(replies[n]) - 8_000 * round(len(replies[n]) / 8_000)) <= 320
        assert dominant_frequency_hz(pcm, 8_000) == pytest.approx(freq, abs=5)
    assert len(d.sim.recorder.opened) == 1  # one conversation for the whole call
