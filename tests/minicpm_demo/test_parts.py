"""The ``minicpm-demo`` kind's pure parts: the wire and its name table, the appends' pace, the
reply table, the handshake URL and the settings."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from asgi_audio_proxy.audio import pcm16_to_wav, wav_to_pcm16
from asgi_audio_proxy.config import ConversationOptions
from asgi_audio_proxy.errors import (
    ContextFull,
    UpstreamBusy,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamSessionLimit,
    UpstreamUnavailable,
)
from asgi_audio_proxy.events import ReplyAudio, ReplyEnded, ReplyStarted, ReplyText
from asgi_audio_proxy.upstreams import named_kind
from asgi_audio_proxy.upstreams.minicpm_demo import (
    EVENT_NAMES,
    AppendBuffer,
    Closed,
    DemoSettings,
    GatewayError,
    Listening,
    QueueState,
    ReplyTracker,
    Speech,
    append_audio,
    close_session,
    ending_for,
    error_for,
    gateway_base,
    gateway_url,
    parse_server_event,
    session_update,
)
from tests.signals import tone

from .schema import check_client

UNIT = 32_000  # 1 s of 16 kHz PCM16


def test_client_events_are_exactly_what_the_schema_allows() -> None:
    wav = pcm16_to_wav(tone(220, 0.5))
    voiced = DemoSettings(ref_audio=wav, tts_ref_audio=wav)
    plain = DemoSettings().map_options(ConversationOptions(instructions="Be brief."))
    cloned = voiced.map_options(ConversationOptions(reference_audio=tone(220, 0.5, 8_000),
                                                    reference_rate_hz=8_000))
    for frame in (session_update(plain), session_update(cloned), append_audio(tone(440, 1.0)),
                  append_audio(bytes(UNIT), force_listen=True), close_session()):
        check_client(frame)
    assert plain == {"instructions": "Be brief."}
    assert cloned["instructions"] == "You are a helpful assistant."  # the schema wants one
    assert cloned["tts_ref_audio"] == base64.b64encode(wav).decode()
    reference = wav_to_pcm16(base64.b64decode(cloned["ref_audio"]))  # the conversation's own voice
    assert reference.sample_rate_hz == 16_000 and abs(reference.duration_s - 0.5) < 0.01
    assert "force_listen" not in json.loads(append_audio(bytes(UNIT)))
    with pytest.raises(ValueError, match="instructions"):
        session_update({"ref_audio": "AAAA"})


def test_an_append_is_float32_and_speech_comes_back_as_pcm16() -> None:
    pcm = tone(440, 0.25)
    raw = base64.b64decode(json.loads(append_audio(pcm))["audio"])
    samples = np.frombuffer(raw, "<f4")
    assert len(samples) == 4_000 and np.allclose(samples, np.frombuffer(pcm, "<i2") / 32768)
    frame = json.dumps({"type": "response.output_audio.delta", "text": "hi",
                        "audio": base64.b64encode(raw).decode(), "end_of_turn": True, "kv_cache_length": 9})
    assert parse_server_event(frame) == Speech("hi", pcm, True, 9)


def test_every_name_is_written_once_in_the_table() -> None:
    assert len(set(EVENT_NAMES.values())) == len(EVENT_NAMES)
    assert json.loads(close_session())["type"] == EVENT_NAMES["close"]
    assert parse_server_event('{"type": "response.listen", "kv_cache_length": 3}') == Listening(3)
    assert parse_server_event('{"type": "session.queued", "position": 2, "estimated_wait_s": 45}') == (
        QueueState("queued", 2, 45.0))


@pytest.mark.parametrize("frame", ["not json", "[]", '{"type": 3}',
                                   '{"type": "response.output_audio.delta", "audio": "***"}',
                                   '{"type": "response.output_audio.delta", "audio": "AAA="}'])
def test_garbage_from_the_gateway_is_a_protocol_error(frame: str) -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_server_event(frame)


def test_each_end_and_error_means_what_it_says() -> None:
    assert isinstance(ending_for(Closed("timeout")), UpstreamSessionLimit)
    assert isinstance(ending_for(Closed("context_full")), ContextFull)
    for reason in ("server_shutdown", "stopped"):
        assert isinstance(ending_for(Closed(reason)), UpstreamUnavailable)
    assert type(ending_for(Closed("error"))) is UpstreamError
    assert all(ending_for(Closed(r)).close_code == 1013 for r in ("timeout", "context_full"))
    assert isinstance(error_for(GatewayError("worker_busy", "no", "server_error")), UpstreamBusy)
    assert error_for(GatewayError("inference_failed", "oops", "server_error")) is None
    assert parse_server_event('{"type": "error", "error": "Queue full"}') == GatewayError(
        "", "Queue full", "server_error")  # an older gateway's bare string


def test_appends_keep_real_time_and_never_put_silence_inside_speech() -> None:
    buffer = AppendBuffer(UNIT, 1.0, 0.25, 10 * UNIT)
    buffer.start(0.0)
    assert buffer.take(0.5) is None and buffer.due_at() == 1.0
    silent = buffer.take(1.0)  # the client said nothing: a second of silence, on time
    assert silent is not None and (silent.pcm, silent.client_bytes) == (bytes(UNIT), 0)
    buffer.feed(b"\x01\x00" * 4_000, 1.8)  # a quarter second, still coming
    assert buffer.take(2.0) is None and buffer.due_at() == 2.05
    buffer.feed(b"\x01\x00" * 12_000, 2.04)
    whole = buffer.take(2.04)  # a whole unit of the client's: at once
    assert whole is not None and whole.client_bytes == UNIT and whole.pcm == b"\x01\x00" * 16_000
    buffer.feed(b"\x02\x00" * 8_000, 2.5)  # half a second, then the client goes quiet
    assert buffer.take(3.0) is None and buffer.due_at() == 3.04
    tail = buffer.take(3.04)
    assert tail is not None and tail.client_bytes == UNIT // 2 and tail.pcm.endswith(bytes(UNIT // 2))
    buffer.feed(bytes(3 * UNIT), 3.1)  # ahead of real time: never faster than 0.9 s apart
    assert buffer.take(3.5) is None and buffer.due_at() == pytest.approx(3.94)
    buffer.force_listen()
    stopped = buffer.take(3.94)
    assert stopped is not None and stopped.force_listen and stopped.client_bytes == UNIT
    assert buffer.take(4.5) is None
    after = buffer.take(4.84)
    assert after is not None and not after.force_listen and buffer.buffered_bytes == UNIT


def test_force_listen_goes_on_the_next_append_only() -> None:
    buffer = AppendBuffer(UNIT, 1.0, 0.25, 10 * UNIT)
    buffer.start(0.0)
    buffer.force_listen()
    first, second = buffer.take(1.0), buffer.take(2.0)
    assert first is not None and first.force_listen and second is not None and not second.force_listen
    assert buffer.appends == 2


def test_the_reply_table() -> None:
    replies = ReplyTracker()
    pcm = bytes(480)
    assert replies.route(Listening(1)) == []
    assert replies.route(Speech("Hi", pcm, False, 2)) == [ReplyStarted(), ReplyText("Hi"),
                                                            ReplyAudio(pcm, 24_000)]
    assert replies.route(Speech("", pcm, True, 3)) == [ReplyAudio(pcm, 24_000), ReplyEnded("complete")]
    replies.route(Speech("More", pcm, False, 4))
    assert replies.route(Listening(5)) == [ReplyEnded("interrupted")]  # the model stopped itself
    replies.route(Speech("Again", pcm, False, 6))
    assert replies.cut() and not replies.cut()
    assert replies.route(Speech("rest", pcm, False, 7)) == [] and replies.dropped == 1
    assert replies.route(Listening(8)) == [] and not replies.is_speaking
    assert replies.route(Speech("New", pcm, True, 9))[0] == ReplyStarted()


@pytest.mark.parametrize(("url", "dialed"), [
    ("http://gpu-1:8006", "ws://gpu-1:8006/v1/realtime?mode=audio&session_id=abc"),
    ("https://demo.example/", "wss://demo.example/v1/realtime?mode=audio&session_id=abc"),
    ("ws://h:1/v1/realtime?mode=audio&x=1", "ws://h:1/v1/realtime?mode=audio&x=1&session_id=abc"),
])
def test_the_url_dialed(url: str, dialed: str) -> None:
    assert gateway_url(url, "abc") == dialed


@pytest.mark.parametrize("url", ["ftp://h", "http://", "ws://h/v1/realtime?mode=video"])
def test_urls_a_gateway_is_not_reached_by(url: str) -> None:
    with pytest.raises(ValueError, match="minicpm-demo"):
        gateway_url(url)


def test_settings_refuse_what_the_gateway_cannot_take() -> None:
    DemoSettings(ref_audio=pcm16_to_wav(tone(220, 1.0)))
    with pytest.raises(ValueError, match="append_s"):
        DemoSettings(append_s=0.1)
    with pytest.raises(ValueError, match="ref_audio"):
        DemoSettings(ref_audio=pcm16_to_wav(tone(220, 1.0, 24_000), 24_000))
    with pytest.raises(ValueError, match="queue_grace_s"):
        DemoSettings(queue_grace_s=0)


def test_the_gateways_own_routes_are_beside_its_realtime_path() -> None:
    assert gateway_base("ws://h:1/v1/realtime?mode=audio") == "ws://h:1"
    assert gateway_base("http://h:1/upstream/v1/realtime/") == "http://h:1/upstream"
    assert gateway_base("http://h:1") == "http://h:1"


def test_the_kind_is_named_for_the_command_line_and_pool_files() -> None:
    kind = named_kind("minicpm-demo", slots=2)
    assert (kind.name, kind.slots, kind.probe_while_leased) == ("minicpm-demo", 2, True)
    assert kind.check_url("http://gpu-1:8006/") == "http://gpu-1:8006"
    with pytest.raises(ValueError, match="no API key"):
        named_kind("minicpm-demo", api_key="sk-x")
