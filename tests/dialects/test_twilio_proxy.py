"""A phone call end to end: the Twilio-like peer, the proxy on a real server with the Twilio
dialect, and the simulator behind it. Every message the proxy sends the call is checked by
Twilio's rules as it arrives (the peer fails the test on the first one that breaks them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette import status
from starlette.applications import Starlette
from starlette.routing import Route
from websockets.asyncio.client import connect

from asgi_audio_proxy.audio.g711 import ulaw_to_pcm16
from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.base import DialectFactory
from asgi_audio_proxy.dialects.twilio import TwimlEndpoint, twilio_dialect, twilio_dialect_factory
from asgi_audio_proxy.edge.middleware import AudioProxy, AudioProxyMiddleware
from asgi_audio_proxy.session.stats import SessionStats
from tests.conftest import running_simulator
from tests.dialects.twilio_peer import TwilioPeer, check_outbound, inbound_message, start_body
from tests.fakes import OpenLeaser
from tests.http_clients import http_client
from tests.servers import serve
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within

RATE_HZ = 8_000
#: a short turn: sound, then enough quiet for the simulator's VAD to end it
UTTERANCE = tone(440, 1.0, RATE_HZ) + silence(1.4, RATE_HZ)


@contextlib.asynccontextmanager
async def phone_proxy(server: str, upstream_url: str, dialect: DialectFactory = twilio_dialect,
                      ) -> AsyncIterator[tuple[AudioProxy, str, list[SessionStats]]]:
    ended: list[SessionStats] = []
    proxy = AudioProxy(ProxyConfig(upstream_url=upstream_url, chunk_duration=0.2), dialect=dialect,
                       on_session_end=ended.append)
    try:
        async with serve(server, proxy) as port:
            yield proxy, f"ws://127.0.0.1:{port}/twilio", ended
    finally:
        await proxy.aclose()


def _reply_numbers(peer: TwilioPeer, after: float = 0.0) -> set[int]:
    return {int(a.message["mark"]["name"].split(".")[0][1:]) for a in peer.of("mark") if a.at > after}


async def test_a_turn_comes_back_as_440_hz_at_8_khz(server: str) -> None:
    async with running_simulator() as up, phone_proxy(server, up.url) as (proxy, url, ended), \
            TwilioPeer.call(url) as peer:
        peer.say(UTTERANCE)
        await up.sim.recorder.wait_for(lambda r: len(r.replies) >= 1, timeout=within(15))
        expected = round(up.sim.recorder.replies[0].heard_s * RATE_HZ)
        # the reply plays back all the model heard, once, as 8 kHz μ-law; each mark comes back
        await peer.wait_for(lambda p: len(p.received_ulaw()) >= expected - 160, timeout_s=15)
        await peer.wait_for(lambda p: len(p.echoed_marks) == len(p.of("mark")))
        pcm = ulaw_to_pcm16(peer.received_ulaw())
        assert dominant_frequency_hz(pcm, RATE_HZ) == pytest.approx(440, abs=5)
        assert abs(len(peer.received_ulaw()) - expected) <= 0.05 * RATE_HZ
        await peer.stop()
        await peer.wait_for(lambda p: p.close_code is not None)
    assert peer.close_code == status.WS_1000_NORMAL_CLOSURE
    async with asyncio.timeout(within(5)):
        await proxy.wait_idle()
    assert ended[0].balanced and ended[0].replies == 1


async def test_a_stop_key_clears_the_call_within_50_ms_and_no_media_of_that_reply_follows() -> None:
    async with running_simulator(chunk_delay_s=0.25) as up, \
            phone_proxy("uvicorn", up.url, twilio_dialect_factory(stop_digits="*")) as (_, url, _), \
            TwilioPeer.call(url) as peer:
        peer.say(UTTERANCE)
        await peer.wait_for(lambda p: bool(p.of("media")), timeout_s=15)
        pressed_at = asyncio.get_running_loop().time()
        await peer.press("*")
        await peer.wait_for(lambda p: bool(p.of("clear")))
        cleared_at = peer.of("clear")[0].at
        assert cleared_at - pressed_at < within(0.05)
        await up.sim.recorder.wait_for(lambda r: r.stops >= 1, timeout=within(5))
        # the next words get a reply of their own; nothing of the cut one comes after the clear
        peer.say(UTTERANCE)
        await peer.wait_for(lambda p: 2 in _reply_numbers(p), timeout_s=20)
        assert _reply_numbers(peer, after=cleared_at) == {2}
        first_media_after = min(a.at for a in peer.of("media") if a.at > cleared_at)
        assert first_media_after > cleared_at


@pytest.mark.parametrize("ending", ["stop", "hang_up"])
async def test_a_call_ending_mid_reply_ends_the_session_cleanly(server: str, ending: str) -> None:
    async with running_simulator(chunk_delay_s=0.3) as up, \
            phone_proxy(server, up.url) as (proxy, url, ended), TwilioPeer.call(url) as peer:
        peer.say(UTTERANCE)
        await peer.wait_for(lambda p: bool(p.of("media")), timeout_s=15)
        await (peer.stop() if ending == "stop" else peer.hang_up())
        await peer.wait_for(lambda p: p.close_code is not None)
        await up.sim.recorder.wait_for(lambda r: r.stops >= 1 and r.ws_closed >= 1, timeout=within(5))
        async with asyncio.timeout(within(5)):
            await proxy.wait_idle()
    (stats,) = ended
    assert stats.balanced
    if ending == "stop":
        assert peer.close_code == stats.close_code == status.WS_1000_NORMAL_CLOSURE


async def test_bad_messages_cost_only_themselves_and_twilio_is_told_nothing() -> None:
    sid = "MZ00000000000000000000000000000001"
    async with running_simulator() as up, phone_proxy("uvicorn", up.url) as (_, url, ended), \
            connect(url, open_timeout=within(10)) as ws:
        media = {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "/w=="}
        await ws.send(inbound_message("media", sid, 1, media=media))  # before start
        await ws.send(inbound_message("start", sid, 2, start=start_body(sid)))
        await ws.send("{not json")
        await ws.send(inbound_message("media", "MZ-another", 3, media=media))
        await ws.send(inbound_message("transcription", sid, 4))
        await ws.send(json.dumps({"event": "stop", "sequenceNumber": "5", "streamSid": sid}))
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(within(10)):
            async for frame in ws:
                received.append(check_outbound(frame, sid))
        assert received == []  # nothing to play, and errors are not Twilio's to hear
        assert ws.close_code == status.WS_1000_NORMAL_CLOSURE
    (stats,) = ended
    assert stats.balanced and stats.close_code == status.WS_1000_NORMAL_CLOSURE


async def test_a_long_reply_plays_whole_with_a_mark_every_40_ms() -> None:
    # 25 marks a second come back for as long as a reply plays: they are not control messages
    # (counted as such, a reply over 4 s ran out the control rate's burst of 20 at 20 a second)
    long_utterance = tone(440, 4.5, RATE_HZ) + silence(1.4, RATE_HZ)
    async with running_simulator() as up, phone_proxy("uvicorn", up.url) as (_, url, _), \
            TwilioPeer.call(url) as peer:
        peer.say(long_utterance)
        await up.sim.recorder.wait_for(lambda r: len(r.replies) >= 1, timeout=within(20))
        expected = round(up.sim.recorder.replies[0].heard_s * RATE_HZ)
        await peer.wait_for(lambda p: len(p.received_ulaw()) >= expected - 160, timeout_s=20)
        await peer.wait_for(lambda p: len(p.echoed_marks) == len(p.of("mark")))
        assert peer.close_code is None


async def test_the_documented_phone_app_answers_the_webhook_and_a_bad_call_leaves_a_good_one_alone(
        ) -> None:
    pytest.importorskip("twilio", reason="the twilio extra builds the TwiML")
    ended: list[SessionStats] = []
    async with running_simulator(multi_conversation=True) as up:
        voice = TwimlEndpoint("/twilio", parameters={"assistantPrompt": "You answer for a bakery."})
        app = AudioProxyMiddleware(
            Starlette(routes=[Route("/voice", voice, methods=["POST"])]),
            config=ProxyConfig(upstream_url=up.url, chunk_duration=0.2), leaser=OpenLeaser(up.url),
            on_session_end=ended.append, dialects={"/twilio": twilio_dialect_factory(stop_digits="*")})
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(app.proxy.aclose)  # its HTTP client to the upstream
            port = await stack.enter_async_context(serve("uvicorn", app))
            async with http_client() as http:
                answer = await http.post(f"http://127.0.0.1:{port}/voice", data={"CallSid": "CA1"})
            assert f'url="wss://127.0.0.1:{port}/twilio"' in answer.text
            url = f"ws://127.0.0.1:{port}/twilio"  # the same path; no TLS on loopback
            async with TwilioPeer.call(url, custom_parameters={"assistantPrompt": "Be brief."}) as good, \
                    connect(url, open_timeout=within(10)) as bad:
                good.say(UTTERANCE)
                for frame in ("{", inbound_message("media", "MZ-nobody", 1, media={"payload": "/w=="})):
                    await bad.send(frame)
                await good.wait_for(lambda p: bool(p.of("mark")) and
                                    len(p.echoed_marks) == len(p.of("mark")) and
                                    len(up.sim.recorder.replies) >= 1, timeout_s=20)
                await bad.close()
                await good.stop()
            async with asyncio.timeout(within(5)):
                await app.proxy.wait_idle()
    assert dominant_frequency_hz(ulaw_to_pcm16(good.received_ulaw()), RATE_HZ) == pytest.approx(440, abs=5)
    assert any(o.get("assistant_prompt") == "Be brief." for o in up.sim.recorder.options)
    assert len(ended) == 2 and all(s.balanced for s in ended)
