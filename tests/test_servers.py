"""End to end on real uvicorn and hypercorn, with the real websockets client and the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import re

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.audio import MESSAGE_BYTES
from asgi_audio_proxy.dialects.native_client import AudioMessage, ErrorMessage, TurnEndMessage, decode_message
from tests.clients import ProxyClient
from tests.conftest import Upstream, running_proxy, running_simulator
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within

TONE = tone(440, 3.0)
UTTERANCE = tone(440, 1.0) + silence(1.4)  # a short turn: sound, then enough quiet for the VAD


def heard_seconds(text: str) -> float:
    match = re.search(r"heard ([\d.]+) s", text)
    assert match, text
    return float(match.group(1))


async def test_s5_3_round_trip_3s_tone_in_200ms_messages(server: str, upstream: Upstream) -> None:
    async with running_proxy(server, upstream.url, chunk_duration=1.0) as (_, url), \
            ProxyClient(url) as client:
        sent = TONE + silence(1.6)
        turn = await client.say(sent)
    uid = upstream.sim.recorder.completions_uids[-1]
    accepted = upstream.sim.recorder.chunks[uid]
    assert accepted and all(len(chunk) == MESSAGE_BYTES for chunk in accepted)
    assert b"".join(accepted) == sent[: len(accepted) * MESSAGE_BYTES]
    assert len(accepted) >= 15 and b"".join(accepted[:15]) == TONE
    assert heard_seconds(turn.text) >= 3.0
    assert turn.ending == TurnEndMessage("complete")
    assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(440, abs=5)


@pytest.mark.parametrize("version", ["2.6", "4.5"])
async def test_s7_both_versions_give_440hz_at_16khz(version: str) -> None:
    async with running_simulator(version=version) as up, \
            running_proxy("uvicorn", up.url, chunk_duration=0.2) as (_, url), \
            ProxyClient(url) as client:
        assert client.proxy.upstream_version == version
        turn = await client.say(UTTERANCE)
    reply = up.sim.recorder.replies[-1]
    # the reply plays back what the model heard: as long as that, once at 16 kHz
    assert len(turn.audio) / 32_000 == pytest.approx(reply.heard_s, abs=0.05)
    assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(440, abs=5)


@pytest.mark.parametrize("frame_bytes", [333, 1])
async def test_odd_frame_sizes_lose_and_reorder_nothing(frame_bytes: int, upstream: Upstream) -> None:
    pcm = tone(440, 0.8) + tone(660, 0.2)  # 5 messages, distinct content
    async with running_proxy("uvicorn", upstream.url, chunk_duration=0.2) as (_, url), \
            ProxyClient(url) as client:
        for i in range(0, len(pcm), frame_bytes):
            await client.conn.send(pcm[i:i + frame_bytes])
        await upstream.sim.recorder.wait_for(
            lambda r: sum(map(len, r.chunks.values())) >= 5, timeout=within(10))
    (chunks,) = upstream.sim.recorder.chunks.values()
    assert b"".join(chunks) == pcm


async def test_chunk_duration_changes_when_messages_go_not_what_they_are(upstream: Upstream) -> None:
    pcm = tone(440, 1.0)
    arrivals: dict[float, list[int]] = {}
    for duration in (0.2, 1.0):
        async with running_simulator() as up, \
                running_proxy("uvicorn", up.url, chunk_duration=duration) as (_, url), \
                ProxyClient(url) as client:
            seen: list[int] = []
            for i in range(0, len(pcm), MESSAGE_BYTES):
                await client.conn.send(pcm[i:i + MESSAGE_BYTES])
                # after each 200 ms of audio, how many messages has the upstream got?
                if duration == 0.2:
                    await up.sim.recorder.wait_for(
                        lambda r, n=i // MESSAGE_BYTES + 1: len(r.acks) >= n, timeout=within(5))
                seen.append(len(up.sim.recorder.acks))
            await up.sim.recorder.wait_for(lambda r: len(r.acks) >= 5, timeout=within(5))
            (chunks,) = up.sim.recorder.chunks.values()
            assert b"".join(chunks) == pcm
            arrivals[duration] = seen
    assert arrivals[0.2] == [1, 2, 3, 4, 5]  # each message goes as soon as it is whole
    assert arrivals[1.0][:4] == [0, 0, 0, 0]  # nothing goes before a whole second has gathered


async def test_two_turns_and_a_stop_in_one_connection(server: str) -> None:
    async with running_simulator(chunk_delay_s=0.25) as up, \
            running_proxy(server, up.url, chunk_duration=0.2) as (_, url), \
            ProxyClient(url) as client:
        first = await client.say(UTTERANCE, stop_after_audio=True)
        assert first.ending == TurnEndMessage("stopped")
        # the user talks again at once: the proxy holds that audio until the upstream listens
        second = await client.say(UTTERANCE)
        assert up.sim.recorder.stops == 1
        third = await client.say(UTTERANCE)
    full = up.sim.recorder.replies[0].heard_s * 32_000  # the reply plays back all it heard
    assert len(first.audio) < full / 2  # cut short: the rest was dropped
    for turn in (second, third):
        assert turn.ending == TurnEndMessage("complete")
        assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(440, abs=5)
        assert "Turn" in turn.text


async def test_upstream_not_running_gives_1011_within_connect_timeout(server: str) -> None:
    async with running_simulator() as up:
        dead_url = up.url  # a port that was just released: nothing listens there any more
    async with running_simulator() as live, \
            running_proxy(server, dead_url, connect_timeout_s=2.0) as (proxy, url):
        async with asyncio.timeout(within(5)):
            async with connect(url) as ws:
                event = decode_message(await ws.recv())
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
        assert isinstance(event, ErrorMessage) and event.code == 1011
        assert "cannot reach the upstream" in event.message
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        # the same server goes on serving other connections
        assert not proxy.sessions
        async with running_proxy(server, live.url) as (_, good_url), ProxyClient(good_url) as client:
            assert client.proxy.is_ready


async def test_client_leaving_mid_reply_stops_the_upstream_and_leaves_no_task(server: str) -> None:
    async with running_simulator(chunk_delay_s=0.3) as up, \
            running_proxy(server, up.url, chunk_duration=0.2) as (proxy, url):
        async with ProxyClient(url) as client:
            await client.send_paced(UTTERANCE)
            async with asyncio.timeout(within(10)):
                while not isinstance((await client.next_frame(10))[1], AudioMessage):
                    pass  # wait for the first reply audio, then leave
        await up.sim.recorder.wait_for(lambda r: r.stops >= 1 and r.ws_closed >= 1,
                                       timeout=within(5))
        async with asyncio.timeout(within(5)):
            await proxy.wait_idle()
        leftovers = [t for t in asyncio.all_tasks() if "session" in repr(t.get_coro())]
        assert leftovers == []


@pytest.mark.slow
async def test_more_than_a_hundred_live_sessions_share_one_http_client() -> None:
    # each live session holds a /completions stream: a capped pool would stall session 101
    async with running_simulator(multi_conversation=True) as up, \
            running_proxy("uvicorn", up.url, many=True, connect_timeout_s=5.0) as (proxy, url), \
            contextlib.AsyncExitStack() as stack:
        clients = await asyncio.gather(*(stack.enter_async_context(ProxyClient(url))
                                         for _ in range(110)))
        assert len(proxy.sessions) == 110
        assert all(client.proxy.is_ready for client in clients)
