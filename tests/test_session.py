"""ProxySession against the two fakes: states, buffering, controls, errors, teardown, accounting."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import pytest

from asgi_audio_proxy.audio import MESSAGE_BYTES, pcm16_to_wav
from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    ConfigAppliedMessage,
    ErrorMessage,
    ProxyMessage,
    ReadyMessage,
    TextMessage,
    TurnEndMessage,
    decode_message,
)
from asgi_audio_proxy.errors import UpstreamProtocolError, UpstreamUnavailable
from asgi_audio_proxy.session.session import ProxySession, SessionState
from asgi_audio_proxy.session.stats import SessionStats
from asgi_audio_proxy.upstreams.minicpm.adapter import MiniCPMAdapter
from asgi_audio_proxy.upstreams.minicpm.transport import BodyClosed
from asgi_audio_proxy.upstreams.minicpm.wire import ReplyMessage
from tests.fakes import FakeClient, FakeUpstream
from tests.http_clients import http_client
from tests.signals import dominant_frequency_hz, tone
from tests.timing import within


class Harness:
    def __init__(self, config: ProxyConfig | None = None, **kwargs: object) -> None:
        self.client = FakeClient()
        self.upstream = FakeUpstream()
        self.http = http_client()
        config = config or ProxyConfig(chunk_duration=0.2)
        adapter = MiniCPMAdapter(config, transport=self.upstream)  # type: ignore[arg-type]
        self.session = ProxySession(self.client, config, self.http, upstream=adapter,
                                    **kwargs)  # type: ignore[arg-type]
        self.task: asyncio.Task[SessionStats] | None = None

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.session.run())
        assert await self.next_message() == ReadyMessage(self.session.id, "2.6")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None and not self.task.done():
            self.client.feed(None)
            async with asyncio.timeout(within(5)):
                await self.task
        await self.http.aclose()

    async def next(self) -> bytes | str:
        async with asyncio.timeout(within(5)):
            return await self.client.outgoing.get()

    async def next_message(self) -> ProxyMessage:
        """The next event the client got, decoded by the native protocol's client half."""
        message = decode_message(await self.next())
        assert not isinstance(message, AudioMessage), f"expected an event, got {len(message.pcm)} bytes"
        return message

    async def finish(self) -> SessionStats:
        assert self.task is not None
        async with asyncio.timeout(within(5)):
            return await self.task


async def test_audio_goes_upstream_in_200ms_messages_and_accounting_balances() -> None:
    async with Harness(ProxyConfig(chunk_duration=0.4)) as h:
        pcm = tone(440, 0.5)  # 16 000 bytes: two messages go, 3 200 bytes wait
        h.client.feed(*(pcm[i:i + 333] for i in range(0, len(pcm), 333)))
        async with asyncio.timeout(within(5)):
            while len(h.upstream.chunks) < 2:
                h.upstream.chunk_arrived.clear()
                await h.upstream.chunk_arrived.wait()
        h.client.feed(None)
        stats = await h.finish()
    assert b"".join(h.upstream.chunks) == pcm[: 2 * MESSAGE_BYTES]
    assert stats.received_bytes == len(pcm)
    assert stats.sent_bytes == 2 * MESSAGE_BYTES
    assert stats.dropped_bytes["session_end"] == len(pcm) - 2 * MESSAGE_BYTES
    assert stats.balanced
    assert h.upstream.closed


async def test_reply_is_routed_and_echo_is_not_played() -> None:
    reply = base64.b64encode(pcm16_to_wav(tone(440, 0.5, 24_000), 24_000)).decode()
    echo = base64.b64encode(pcm16_to_wav(tone(300, 1.0))).decode()
    async with Harness() as h:
        h.upstream.push_reply(["Hello", " world"], reply, echo)
        got = [decode_message(await h.next())]
        while not isinstance(got[-1], TurnEndMessage):
            got.append(decode_message(await h.next()))
    events = [m for m in got if not isinstance(m, AudioMessage)]
    assert events == [TextMessage("Hello"), TextMessage(" world"), TurnEndMessage("complete")]
    audio = b"".join(m.pcm for m in got if isinstance(m, AudioMessage))
    assert dominant_frequency_hz(audio) == pytest.approx(440, abs=5)  # not the 300 Hz echo


async def test_bad_control_frames_cost_an_error_event_and_the_session_goes_on() -> None:
    async with Harness() as h:
        for frame, kind in [("not json", "bad_payload"), ("[1, 2]", "bad_payload"),
                            ('{"type": "dance"}', "bad_payload"), ("x" * 10_000, "bad_payload"),
                            ('{"type": "config", "vadThreshold": 2}', "bad_payload")]:
            h.client.feed(frame)
            event = await h.next_message()
            assert isinstance(event, ErrorMessage) and event.kind == kind, event
        assert h.session.state is SessionState.STREAMING
        h.client.feed(bytes(MESSAGE_BYTES))
        async with asyncio.timeout(within(5)):
            await h.upstream.chunk_arrived.wait()


async def test_config_before_audio_reaches_the_upstream_and_after_audio_is_refused() -> None:
    async with Harness() as h:
        h.client.feed(json.dumps({"type": "config", "vadThreshold": 0.5, "assistantPrompt": "Hi"}))
        assert await h.next_message() == ConfigAppliedMessage()
        assert h.upstream.options[-1].vad_threshold == 0.5
        assert h.upstream.options[-1].assistant_prompt == "Hi"
        h.client.feed(bytes(MESSAGE_BYTES), json.dumps({"type": "config", "vadThreshold": 0.6}))
        event = await h.next_message()
        assert isinstance(event, ErrorMessage) and "before the first audio" in event.message


async def test_stop_cuts_the_reply_at_once_and_tells_the_upstream() -> None:
    reply = base64.b64encode(pcm16_to_wav(tone(440, 0.5, 24_000), 24_000)).decode()
    async with Harness() as h:
        h.upstream.push(ReplyMessage("assistant:\n", None, 0), ReplyMessage("one", reply, 1))
        assert await h.next_message() == TextMessage("one")
        assert isinstance(await h.next(), bytes)
        h.client.feed('{"type": "stop"}')
        assert await h.next_message() == TurnEndMessage("stopped")
        assert h.upstream.stops == 1
        # the upstream goes on (its /stop is late); none of it reaches the client
        h.upstream.push(ReplyMessage("two", reply, 2), ReplyMessage("\n<end>", None, 3), BodyClosed())
        h.upstream.push(ReplyMessage("assistant:\n", None, 10), ReplyMessage("next turn", None, 11))
        assert await h.next_message() == TextMessage("next turn")


async def test_stop_with_no_reply_playing_does_not_touch_the_upstream() -> None:
    async with Harness() as h:
        h.client.feed('{"type": "stop"}', '{"type": "nope"}')
        assert isinstance(await h.next_message(), ErrorMessage)  # answered in order: stop said nothing
        assert h.upstream.stops == 0


async def test_client_leaving_mid_reply_stops_the_upstream() -> None:
    async with Harness() as h:
        h.upstream.push(ReplyMessage("assistant:\n", None, 0), ReplyMessage("one", None, 1))
        await h.next_message()
        h.client.feed(None)
        stats = await h.finish()
    assert h.upstream.stops == 1 and h.upstream.closed
    assert stats.close_code == 1000  # the client's own code
    assert h.client.close_code is None  # nobody closes a socket that is gone


@pytest.mark.parametrize(("error", "code"), [
    (UpstreamProtocolError("garbage"), 1014), (UpstreamUnavailable("gone"), 1011)])
async def test_upstream_failure_sends_an_error_event_then_closes_with_its_code(
        error: Exception, code: int) -> None:
    async with Harness() as h:
        h.upstream.push(error)
        event = await h.next_message()
        stats = await h.finish()
    assert isinstance(event, ErrorMessage) and event.code == code
    assert h.client.close_code == code == stats.close_code


async def test_upstream_connect_failure_is_reported_before_ready() -> None:
    h = Harness()
    h.upstream.connect_error = UpstreamUnavailable("cannot reach the upstream")
    stats = await h.session.run()
    assert await h.next_message() == ErrorMessage("upstream_unavailable", 1011, "cannot reach the upstream")
    assert h.client.close_code == 1011 == stats.close_code
    await h.http.aclose()


async def test_an_upstream_silent_through_the_handshake_is_a_timeout_not_a_bug() -> None:
    h = Harness(ProxyConfig(chunk_duration=0.2, connect_timeout_s=0.05))
    h.upstream.connect_hangs = True
    async with asyncio.timeout(within(5)):
        stats = await h.session.run()
    event = await h.next_message()
    assert isinstance(event, ErrorMessage), event
    assert (event.kind, event.code) == ("upstream_timeout", 1011), event
    assert h.client.close_code == 1011 == stats.close_code
    await h.http.aclose()


async def test_uid_takeover_ack_ends_the_session() -> None:
    async with Harness() as h:
        h.upstream.ack_reason, h.upstream.ack_error = None, "UID changed in stream"
        h.client.feed(bytes(MESSAGE_BYTES))
        event = await h.next_message()
        stats = await h.finish()
    assert isinstance(event, ErrorMessage) and event.code == 1011 and "took over" in event.message
    assert stats.dropped_bytes["upstream_rejected"] == MESSAGE_BYTES and stats.balanced


async def test_oversized_frame_closes_with_1009() -> None:
    async with Harness(ProxyConfig(chunk_duration=0.2, max_message_bytes=1000)) as h:
        h.client.feed(bytes(1002))
        event = await h.next_message()
        stats = await h.finish()
    assert isinstance(event, ErrorMessage) and event.kind == "message_too_big", event
    assert h.client.close_code == 1009
    assert stats.dropped_bytes["oversize"] == 1002 and stats.balanced


async def test_a_bug_is_logged_once_with_traceback_and_closes_1011(
        caplog: pytest.LogCaptureFixture) -> None:
    async with Harness() as h:
        h.upstream.push(ZeroDivisionError("oops"))
        event = await h.next_message()
        await h.finish()
    assert event == ErrorMessage("internal_error", 1011, "internal error in the proxy")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert f"[session {h.session.id}]" in errors[0].getMessage()


async def test_every_log_line_carries_the_session_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asgi_audio_proxy")
    async with Harness() as h:
        h.client.feed("bad")
        await h.next_message()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("asgi_audio_proxy")]
    assert lines and all(f"[session {h.session.id}]" in line for line in lines)
    assert any("closed: code 1000" in line for line in lines)


class OneLease:
    """A leaser with one upstream: the working double of a pool."""

    def __init__(self) -> None:
        self.url, self.kind = "http://127.0.0.1:9", None
        self.held_frames: list[bytes | str] = [bytes(MESSAGE_BYTES)]
        self.lost = asyncio.Event()
        self.released: list[bool] = []

    async def would_wait(self) -> bool:
        return False

    async def acquire(self, session_id: str, client: object, notify: object, *,
                      again: bool = False) -> OneLease:
        return self

    async def release(self, *, failed: bool = False, busy: bool = False) -> None:
        self.released.append(failed)

    async def aclose(self) -> None:
        return None


async def test_held_frames_are_replayed_and_a_lost_lease_ends_the_session() -> None:
    lease = OneLease()
    async with Harness(leaser=lease) as h:
        async with asyncio.timeout(within(5)):
            await h.upstream.chunk_arrived.wait()  # the frame held while queued went upstream
        lease.lost.set()
        event = await h.next_message()
        stats = await h.finish()
    assert isinstance(event, ErrorMessage) and event.kind == "upstream_error" and "lease" in event.message
    assert stats.close_code == 1011 and lease.released == [True]
