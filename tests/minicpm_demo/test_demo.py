"""``asgi-audio-proxy demo --upstream-kind minicpm-demo``: with no upstream given, the demo mounts
the gateway simulator and its page's proxy talks to it."""

from __future__ import annotations

import pytest

from asgi_audio_proxy.demo.server import DemoServer
from asgi_audio_proxy.dialects.native_client import TurnEndMessage
from asgi_audio_proxy.simulator.minicpm_demo import GatewaySimulator
from asgi_audio_proxy.upstreams import named_kind
from tests.clients import ProxyClient
from tests.signals import dominant_frequency_hz, silence, tone


async def test_the_demo_mounts_the_gateway_simulator_for_the_minicpm_demo_kind() -> None:
    async with DemoServer(port=0, kind=named_kind("minicpm-demo")) as demo:
        assert isinstance(demo.simulator, GatewaySimulator)
        assert demo.upstream_url.endswith("/upstream/v1/realtime")
        async with ProxyClient(demo.proxy_url) as client:
            assert client.proxy.upstream_version == "minicpm-o-4.5-demo"
            turn = await client.say(tone(440, 1.0) + silence(1.4))
        recorder = demo.simulator.recorder
    assert turn.ending == TurnEndMessage("complete")
    assert turn.text.startswith("Turn 1: heard ")
    assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(440, abs=5)
    assert recorder.received("session.close")  # the proxy said goodbye to the gateway
