"""Property tests (Hypothesis) for framing and accounting: nothing lost, nothing invented.

- Any split of a byte stream into frames gives the same upstream messages: the buffer alone,
  a ``ProxySession`` between the two fakes, and the real stack (uvicorn, simulator) for a few.
- ``received == sent + skipped + dropped`` after any session: random frame sizes (oversized
  ones included), random acks (``done``, ``skip``, an error) and the client leaving at a
  random point.
"""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from asgi_audio_proxy.audio import MESSAGE_BYTES, ChunkBuffer
from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.session.session import ProxySession
from asgi_audio_proxy.session.stats import SessionStats
from asgi_audio_proxy.upstreams.minicpm.adapter import MiniCPMAdapter
from asgi_audio_proxy.upstreams.minicpm.settings import MiniCPMSettings
from asgi_audio_proxy.upstreams.minicpm.wire import Ack
from tests.conftest import running_simulator
from tests.fakes import FakeClient, FakeUpstream
from tests.faults.observe import proxy_on
from tests.http_clients import http_client
from tests.timing import within

#: chunk_duration 1 s: its five messages may go at once (the pacer's burst), so no example waits
CONFIG = ProxyConfig(chunk_duration=1.0, max_message_bytes=12_000)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, repeats give empty frames)."""
    points = sorted(min(c, len(data)) for c in cuts)
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


streams = st.binary(min_size=0, max_size=5 * MESSAGE_BYTES + 999)
cut_lists = st.lists(st.integers(0, 5 * MESSAGE_BYTES + 999), max_size=40)


@given(streams, cut_lists, cut_lists)
def test_any_split_gives_the_same_messages_from_the_buffer(data: bytes, cuts_a: list[int],
                                                           cuts_b: list[int]) -> None:
    def messages(frames: list[bytes]) -> list[bytes]:
        buffer = ChunkBuffer(release_messages=1)
        return [m for frame in frames for m in buffer.feed(frame)]

    whole = messages([data])
    assert messages(split(data, cuts_a)) == messages(split(data, cuts_b)) == whole
    assert b"".join(whole) == data[: len(data) // MESSAGE_BYTES * MESSAGE_BYTES]
    assert all(len(m) == MESSAGE_BYTES for m in whole)


class ScriptedUpstream(FakeUpstream):
    """The fake upstream, answering each message with the next ack of a script (then ``done``)."""

    def __init__(self, script: list[Ack]) -> None:
        super().__init__()
        self.script = list(script)

    async def send_audio(self, pcm: bytes) -> None:
        ack = self.script.pop(0) if self.script else Ack("done")
        self.ack_reason, self.ack_error = ack.reason, ack.error
        await super().send_audio(pcm)


async def run_session(frames: list[bytes], acks: list[Ack], leave_after: int | None,
                      config: ProxyConfig = CONFIG) -> tuple[SessionStats, ScriptedUpstream]:
    """Feed ``frames``; leave once ``leave_after`` messages went upstream (or at once)."""
    client, upstream = FakeClient(), ScriptedUpstream(acks)
    async with http_client() as http:
        adapter = MiniCPMAdapter(config, transport=upstream)  # type: ignore[arg-type]
        session = ProxySession(client, config, http, upstream=adapter)
        task = asyncio.create_task(session.run())
        async with asyncio.timeout(within(5)):
            assert json.loads(await client.outgoing.get())["type"] == "ready"  # type: ignore[arg-type]
            client.feed(*frames)
            while leave_after and len(upstream.chunks) < leave_after and not task.done():
                upstream.chunk_arrived.clear()
                waiter = asyncio.create_task(upstream.chunk_arrived.wait())
                await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
            client.feed(None)
            stats = await task
    return stats, upstream


acks = st.lists(st.sampled_from([Ack("done"), Ack("skip"), Ack(None, "Invalid request format")]),
                max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams, st.lists(st.integers(0, 13_000), max_size=12), acks, st.integers(0, 5))
def test_accounting_identity_holds_for_any_frames_and_acks(data: bytes, sizes: list[int],
                                                           script: list[Ack], leave_after: int) -> None:
    frames: list[bytes] = []
    offset = 0
    for size in sizes:  # random frame sizes, some over max_message_bytes, then the rest whole
        frames.append(data[offset:offset + size])
        offset += size
    frames.append(data[offset:])
    # how many messages can go before a frame over the limit ends the session: wait for no more
    accepted = 0
    for frame in frames:
        if len(frame) > CONFIG.max_message_bytes:
            break
        accepted += len(frame)
    release = MiniCPMSettings().forwarded(CONFIG).release_messages  # what the adapter gathers
    releasable = accepted // (release * MESSAGE_BYTES) * release
    stats, upstream = asyncio.run(run_session(frames, script, min(leave_after, releasable)))
    assert stats.balanced, stats.summary()
    assert stats.received_bytes <= len(data)
    assert stats.sent_bytes + stats.skipped_bytes + stats.dropped_bytes["upstream_rejected"] \
        + stats.dropped_bytes["unacknowledged"] == sum(map(len, upstream.chunks))
    assert b"".join(upstream.chunks) == data[: len(b"".join(upstream.chunks))]  # in order, unchanged


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(0, 3_000), cut_lists, cut_lists)
def test_any_split_gives_the_same_messages_through_a_session(seed: bytes, extra: int, cuts_a: list[int],
                                                             cuts_b: list[int]) -> None:
    size = 5 * MESSAGE_BYTES + extra  # one release of five messages, and a remainder
    data = (seed * (size // len(seed) + 1))[:size]
    config = ProxyConfig(chunk_duration=1.0)  # no frame is too big here
    sent = [asyncio.run(run_session(split(data, cuts), [], 5, config))[1].chunks
            for cuts in (cuts_a, cuts_b)]
    whole = [data[i:i + MESSAGE_BYTES] for i in range(0, 5 * MESSAGE_BYTES, MESSAGE_BYTES)]
    assert sent[0] == sent[1] == whole


@settings(max_examples=3, deadline=None)
@given(st.lists(st.integers(1, 7_000), min_size=1, max_size=30))
def test_real_stack_same_messages_and_balanced_accounts(sizes: list[int]) -> None:
    pcm = bytes(range(256)) * 100  # 25 600 B: four messages, a pattern that shows any reorder

    async def scenario() -> tuple[list[bytes], list[SessionStats]]:
        async with running_simulator() as up, \
                proxy_on("uvicorn", up.url, chunk_duration=0.2) as proxy:
            frames, offset = [], 0
            for size in sizes:
                frames.append(pcm[offset:offset + size])
                offset += size
            frames.append(pcm[offset:])
            async with connect(proxy.url, open_timeout=within(5)) as ws:
                await ws.recv()  # ready
                for frame in frames:
                    await ws.send(frame)
                await up.sim.recorder.wait_for(lambda r: sum(map(len, r.chunks.values())) >= 4,
                                               timeout=within(5))
            await proxy.idle()
            (chunks,) = up.sim.recorder.chunks.values()
            return chunks, proxy.ended

    chunks, ended = asyncio.run(scenario())
    assert b"".join(chunks) == pcm
    (stats,) = ended
    assert stats.balanced and stats.received_bytes == len(pcm), stats.summary()
