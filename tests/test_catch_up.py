"""Audio that fell behind catches up at 1.25x real time, never in one burst (``pacing.CATCH_UP``).

The model server's VAD times speech by its own clock and answers no turn shorter than 0.6 s
(section 5.2). A client that stalls mid-call and then sends its backlog at once (a busy phone, a
mobile network that bunched its packets) would hand it a second of speech in a few
milliseconds: a turn too short to answer, and a conversation that waits for nothing.
"""

from __future__ import annotations

import asyncio

from asgi_audio_proxy.dialects.native_client import TurnEndMessage
from tests.clients import ProxyClient
from tests.conftest import running_proxy, running_simulator
from tests.signals import silence, tone


async def test_a_turn_sent_late_in_one_burst_is_still_a_turn_at_the_model_server() -> None:
    async with running_simulator() as up, running_proxy("uvicorn", up.url, chunk_duration=0.2) as (_, url), \
            ProxyClient(url) as client:
        await client.send_paced(silence(1.0))  # on schedule: the conversation is open
        await asyncio.sleep(2.0)  # the stall under test: two seconds with nothing sent ...
        backlog = tone(440.0, 1.2) + silence(0.8)  # ... then those two seconds at once
        for i in range(0, len(backlog), 640):
            await client.conn.send(backlog[i:i + 640])

        async def keep_talking() -> None:  # a live client's silence, until the reply is in
            await client.send_paced(silence(8.0))

        talking = asyncio.create_task(keep_talking())
        try:
            turn = await client.read_turn(15)
        finally:
            talking.cancel()
    assert turn.ending == TurnEndMessage("complete"), turn.messages
    assert turn.text.startswith("Turn 1: heard"), turn.text
    assert up.sim.recorder.turn_ends == 1
