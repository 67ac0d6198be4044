"""The ``minicpm-demo`` adapter against the gateway simulator, on its own: a gateway with no
worker free refuses the conversation as busy (queued, or a full queue), and a conversation that
was never created ends without a ``session.close`` the gateway would not read."""

from __future__ import annotations

import pytest

from asgi_audio_proxy.config import UpstreamOptions
from asgi_audio_proxy.errors import UpstreamBusy
from asgi_audio_proxy.upstreams.minicpm_demo import DemoAdapter, DemoSettings
from tests.timing import within

from .support import RawClient, gateway


@pytest.mark.parametrize(("max_queue", "said"), [(4, "queued the conversation at position 1"),
                                                 (0, "queue_full")])
async def test_a_gateway_with_no_free_worker_refuses_the_conversation_as_busy(max_queue: int,
                                                                              said: str) -> None:
    async with gateway(max_queue=max_queue) as gw, RawClient.open(gw.ws_url()) as holder:
        await holder.start()
        adapter = DemoAdapter(gw.url, DemoSettings(connect_timeout_s=within(5)))
        with pytest.raises(UpstreamBusy, match=said) as refused:
            await adapter.connect(UpstreamOptions())
        await adapter.aclose()
        await gw.sim.recorder.wait_for(lambda r: len(r.ended) == 1 or max_queue == 0, timeout=within(10))
    assert refused.value.close_code == 1013
    assert len(gw.sim.recorder.received("session.update")) == 1  # the holder's: none was sent
    assert not gw.sim.recorder.received("session.close")


async def test_a_conversation_opens_and_closes_with_session_close() -> None:
    async with gateway() as gw:
        adapter = DemoAdapter(gw.url, DemoSettings())
        await adapter.connect(UpstreamOptions(assistant_prompt="Be brief."))
        assert adapter.gateway_session is not None
        await adapter.aclose()
        await adapter.aclose()  # idempotent
        await gw.sim.recorder.wait_for(lambda r: len(r.ended) == 1, timeout=within(5))
    assert [e["type"] for e in gw.sim.recorder.sent][-1] == "session.closed"
    assert gw.sim.recorder.received("session.update")[0]["session"] == {"instructions": "Be brief."}
    assert gw.sim.recorder.received("session.close") == [{"type": "session.close", "reason": "user_stop"}]
