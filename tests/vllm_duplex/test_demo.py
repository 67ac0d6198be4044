"""``asgi-audio-proxy demo --upstream-kind vllm-duplex``: the demo mounts the duplex simulator and
the proxy of that kind talks to it, a turn answered."""

from __future__ import annotations

import pytest

from asgi_audio_proxy.demo.server import DemoServer
from asgi_audio_proxy.dialects.native_client import TurnEndMessage
from asgi_audio_proxy.simulator.vllm_duplex import DuplexSimulator
from asgi_audio_proxy.upstreams.registry import named_kind
from tests.clients import ProxyClient
from tests.signals import dominant_frequency_hz, silence, tone


async def test_the_demo_of_the_vllm_duplex_kind_mounts_its_simulator_and_answers() -> None:
    async with DemoServer("127.0.0.1", 0, kind=named_kind("vllm-duplex")) as demo, \
            ProxyClient(demo.proxy_url) as client:
        turn = await client.say(tone(440, 1.0) + silence(0.6))
    assert isinstance(demo.simulator, DuplexSimulator)
    assert demo.upstream_url == f"ws://127.0.0.1:{demo.port}/upstream/v1/realtime"
    assert turn.ending == TurnEndMessage("complete") and turn.text.startswith("Turn 1:")
    assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(440, abs=5)
    assert demo.simulator.recorder.closed == demo.simulator.recorder.opened  # session.close at the end


def test_a_kind_with_no_simulator_still_needs_its_url() -> None:
    with pytest.raises(ValueError, match="needs its URL"):
        DemoServer("127.0.0.1", 0, kind=named_kind("realtime"))
