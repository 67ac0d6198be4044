"""Voice barge-in on a phone call: the caller talks over the reply, Twilio is told ``clear`` and
hears nothing more of it, and the caller's words get a reply of their own. Real speech
(``espeak-ng``) through the proxy (``barge_in="voice"``) and the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asgi_audio_proxy.audio import Resampler
from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.twilio import twilio_dialect
from asgi_audio_proxy.edge.middleware import AudioProxy
from tests.conftest import running_simulator
from tests.dialects.twilio_peer import TwilioPeer
from tests.servers import serve
from tests.signals import silence, tone
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

pytestmark = pytest.mark.skipif(espeak_missing_reason() is not None,
                                reason=espeak_missing_reason() or "")

RATE_HZ = 8_000
FIRST_TURN = tone(440, 2.0, RATE_HZ) + silence(1.4, RATE_HZ)


@pytest.fixture(scope="module")
def interruption(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A spoken interruption as a phone line carries it: 8 kHz PCM16, then quiet."""
    bank = SpeechBank(Path(tmp_path_factory.mktemp("speech")))
    samples = bank.utterance("Wait, stop please, I want to ask something else.").samples
    resampler = Resampler(16_000, RATE_HZ)
    speech = resampler.feed(to_pcm(0.5 * samples / np.abs(samples).max())) + resampler.flush()
    return speech + silence(1.4, RATE_HZ)


def _replies_marked(peer: TwilioPeer, after: float = 0.0) -> set[int]:
    return {int(a.message["mark"]["name"].split(".")[0][1:]) for a in peer.of("mark") if a.at > after}


async def test_talking_over_the_reply_clears_the_call_and_gets_its_own_reply(interruption: bytes) -> None:
    async with running_simulator(chunk_delay_s=0.45) as up:
        config = ProxyConfig(upstream_url=up.url, chunk_duration=0.2, barge_in="voice")
        proxy = AudioProxy(config, dialect=twilio_dialect)
        try:
            async with serve("uvicorn", proxy) as port, \
                    TwilioPeer.call(f"ws://127.0.0.1:{port}/twilio") as peer:
                peer.say(FIRST_TURN)
                await peer.wait_for(lambda p: len(p.echoed_marks) >= 3, timeout_s=15)
                peer.say(interruption)
                await peer.wait_for(lambda p: bool(p.of("clear")), timeout_s=5)
                cleared_at = peer.of("clear")[0].at
                await peer.wait_for(lambda p: 2 in _replies_marked(p), timeout_s=20)
                # nothing of the cut reply after the clear; the pending marks came back cleared
                assert _replies_marked(peer, after=cleared_at) == {2}
                assert len(peer.heard_ulaw(cleared_at)) < up.sim.recorder.replies[0].heard_s * RATE_HZ
        finally:
            await proxy.aclose()
    assert up.sim.recorder.stops >= 1
