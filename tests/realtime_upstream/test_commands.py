"""The realtime kind as an operator starts it: ``serve --upstream-kind realtime`` in front of another
``serve``'s ``/v1/realtime`` in front of the simulator, and the demo with ``--upstream-kind
realtime``; every process started by its command line, clients on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tests.clients import ProxyClient
from tests.conftest import running_simulator
from tests.signals import silence, tone
from tests.test_one_conversation import command, process

UTTERANCE = tone(440, 1.0) + silence(1.4)
SERVING = r"running on http://127\.0\.0\.1:(\d+)"


@contextlib.asynccontextmanager
async def inner_serve() -> AsyncIterator[str]:
    """``serve`` in front of a simulator; yields its Realtime URL (``ws://…/v1/realtime``)."""
    async with running_simulator() as up, process(command(
            "serve", "--upstream", up.url, "--port", "0", "--chunk-duration", "0.2"), SERVING) as port:
        yield f"ws://127.0.0.1:{port}/v1/realtime"


async def test_serve_with_a_realtime_upstream_in_front_of_another_serve() -> None:
    async with inner_serve() as realtime_url, process(command(
            "serve", "--upstream-kind", "realtime", "--upstream", realtime_url, "--upstream-model",
            "minicpm-o", "--port", "0"), SERVING) as port:
        async with ProxyClient(f"ws://127.0.0.1:{port}/audio_proxy") as client:
            first, second = await client.say(UTTERANCE), await client.say(UTTERANCE)
        assert first.audio and second.audio and first.text and second.text


async def test_the_demo_with_a_realtime_upstream() -> None:
    async with inner_serve() as realtime_url, process(command(
            "demo", "--upstream-kind", "realtime", "--upstream", realtime_url, "--port", "0",
            "--talk", "1"), r"open http://127\.0\.0\.1:(\d+)/", stream="stdout") as port:
        client = ProxyClient(f"ws://127.0.0.1:{port}/audio_proxy")
        async with client:  # the start-up talk got its reply before the URL was printed
            assert (await client.say(UTTERANCE)).audio
