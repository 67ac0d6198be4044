"""A call's ``customParameters`` reach the proxy's ``admit`` hook: a call with the right token is
served (its identity kept on the session's stats), one without is ended with 1008 and Twilio is
told nothing it would reject."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette import status

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.twilio import twilio_dialect
from asgi_audio_proxy.edge.middleware import AudioProxy
from asgi_audio_proxy.errors import Denied
from asgi_audio_proxy.session.stats import SessionStats
from tests.conftest import running_simulator
from tests.servers import serve
from tests.signals import silence, tone
from tests.timing import within

from .twilio_peer import RATE_HZ, TwilioPeer


async def admit(parameters: Mapping[str, str], identity: object) -> object:
    if parameters.get("token") != "call-secret":
        raise Denied(403, "this call's token is not accepted")
    return f"caller {parameters.get('from', '?')}"


async def test_a_calls_parameters_are_checked_after_its_start() -> None:
    ended: list[SessionStats] = []
    async with running_simulator() as up:
        proxy = AudioProxy(ProxyConfig(upstream_url=up.url, chunk_duration=0.2), dialect=twilio_dialect,
                           on_session_end=ended.append, admit=admit)
        try:
            async with serve("uvicorn", proxy) as port:
                url = f"ws://127.0.0.1:{port}/twilio"
                async with TwilioPeer.call(url, custom_parameters={"token": "call-secret",
                                                                  "from": "+15550100"}) as good:
                    good.say(tone(440, 1.0, RATE_HZ) + silence(1.4, RATE_HZ))
                    await good.wait_for(lambda p: bool(p.of("media")), timeout_s=15)
                    await good.stop()
                    await good.wait_for(lambda p: p.close_code is not None)
                async with TwilioPeer.call(url, custom_parameters={"token": "guess"}) as bad:
                    bad.say(tone(440, 1.0, RATE_HZ))
                    await bad.wait_for(lambda p: p.close_code is not None, timeout_s=10)
                async with asyncio.timeout(within(5)):
                    await proxy.wait_idle()
        finally:
            await proxy.aclose()
    assert good.close_code == status.WS_1000_NORMAL_CLOSURE
    assert bad.close_code == status.WS_1008_POLICY_VIOLATION and bad.arrivals == []
    assert [s.identity for s in ended] == ["caller +15550100", None]
    assert all(s.balanced for s in ended)
