"""The native protocol's client half (``dialects/native_client.py``) against its server half.

Every message is made by the server half's own encoder (:meth:`NativeDialect.send`) from each
kind of event the session hands it, so the two halves cannot drift apart: a new event the
server learns to send fails here until the client half reads it. The recorded session
(``tests/golden/native_session.json``) is decoded too, frame by frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from asgi_audio_proxy.dialects.native import ConfigControl, NativeDialect, StopControl, parse_control
from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    BadProxyMessage,
    ConfigAppliedMessage,
    ErrorMessage,
    FinishedReply,
    NativeClient,
    ProxyMessage,
    QueuedMessage,
    ReadyMessage,
    ResumedMessage,
    SpeechStartedMessage,
    SpeechStoppedMessage,
    TextMessage,
    TurnEndMessage,
    UnknownProxyMessage,
    decode_message,
    encode_control,
)
from asgi_audio_proxy.events import (
    ConfigApplied,
    ConfigKept,
    DialectFrames,
    ErrorEvent,
    Queued,
    Ready,
    ReplyAudio,
    ReplyEnded,
    ReplyStarted,
    ReplyText,
    ServerEvent,
    SpeechStarted,
    SpeechStopped,
)

GOLDEN = Path(__file__).parent / "golden" / "native_session.json"
PCM = bytes(range(256)) * 2  # 256 samples
TEXT = 'Paris, \u00e9t\u00e9 \u2603 "quoted"\n'  # not ASCII, a quote, a newline

#: each event the session hands the native dialect, and what a client must read in its frame
SENT: list[tuple[ServerEvent, ProxyMessage]] = [
    (Ready("3f2a9c", "2.6"), ReadyMessage("3f2a9c", "2.6")),
    (Ready("3f2a9c", "2.6", "tok-1_x"), ReadyMessage("3f2a9c", "2.6", "tok-1_x")),
    (Queued(3, 361.04), QueuedMessage(3, 361.0)),
    (Queued(1, 0), QueuedMessage(1, 0.0)),
    (ConfigApplied(), ConfigAppliedMessage()),
    (ConfigKept("the upstream takes options at the start only"),
     ErrorMessage("policy_violation", 1008, "config must be sent before the first audio")),
    (ReplyText(TEXT), TextMessage(TEXT)),
    (ReplyText(""), TextMessage("")),
    (ReplyAudio(PCM, 16_000), AudioMessage(PCM)),
    (ReplyEnded("complete"), TurnEndMessage("complete")),
    (ReplyEnded("stopped", stopped_by="voice"), TurnEndMessage("stopped")),
    (ReplyEnded("interrupted"), TurnEndMessage("interrupted")),
    (SpeechStarted(4160), SpeechStartedMessage(4160)),
    (SpeechStopped(6784), SpeechStoppedMessage(6784)),
    (ErrorEvent("bad_payload", "text frame is not JSON", 1007), ErrorMessage("bad_payload", 1007,
                                                                              "text frame is not JSON")),
    (ErrorEvent("upstream_error", "gone", 1011, fatal=True), ErrorMessage("upstream_error", 1011, "gone")),
]
#: events the native dialect sends no frame for
UNSENT: list[ServerEvent] = [ReplyStarted(), ReplyAudio(b"", 16_000), DialectFrames(())]


def encode(event: ServerEvent) -> list[str | bytes]:
    return NativeDialect(max_text_bytes=4096).send(event)


def test_every_server_event_kind_has_a_case() -> None:
    cases = {type(event) for event, _ in SENT} | {type(event) for event in UNSENT}
    assert cases == set(get_args(ServerEvent))
    resumed = {ResumedMessage}  # the dialect's answer to a resume, not a session event
    assert {type(message) for _, message in SENT} | resumed == set(get_args(ProxyMessage))


def test_resumed_and_the_tokens_a_client_keeps() -> None:
    dialect, client = NativeDialect(max_text_bytes=4096), NativeClient()
    client.receive(encode(Ready("3f2a9c", "2.6", "first"))[0])
    assert client.resume_token == "first"
    [frame] = dialect.resumed("3f2a9c", "second")
    assert client.receive(frame) == ResumedMessage("3f2a9c", "second")
    assert client.resume_token == "second" and client.session_id == "3f2a9c"
    with pytest.raises(BadProxyMessage, match="missing"):
        decode_message('{"type": "resumed", "session": "3f2a9c"}')
    assert dialect.silence(0.02) == bytes(640)


@pytest.mark.parametrize(("event", "expected"), SENT, ids=lambda v: type(v).__name__)
def test_each_frame_the_server_half_sends_decodes_to_its_message(
        event: ServerEvent, expected: ProxyMessage) -> None:
    frames = encode(event)
    assert len(frames) == 1
    assert decode_message(frames[0]) == expected


def test_events_without_a_frame_send_none() -> None:
    assert [encode(event) for event in UNSENT] == [[], [], []]


def test_every_frame_of_the_recorded_session_decodes() -> None:
    steps = json.loads(GOLDEN.read_text())["steps"]
    texts = [frame["text"] for step in steps for frame in step["frames"] if "text" in frame]
    kinds = {type(decode_message(text)) for text in texts}
    assert kinds == {ReadyMessage, ErrorMessage, ConfigAppliedMessage, TextMessage, TurnEndMessage}
    sizes = [frame["binary"] for step in steps for frame in step["frames"] if "binary" in frame]
    assert sizes and all(isinstance(decode_message(bytes(n)), AudioMessage) for n in sizes)


def test_an_unknown_type_is_an_error_naming_it() -> None:
    frame = '{"type":"reply_started"}'
    with pytest.raises(UnknownProxyMessage, match="reply_started") as caught:
        decode_message(frame)
    assert caught.value.kind == "reply_started" and caught.value.frame == frame
    assert isinstance(caught.value, BadProxyMessage)


@pytest.mark.parametrize(("frame", "problem"), [
    ("not json", "not JSON"),
    ("[1, 2]", 'string "type"'),
    ('{"content": "hi"}', 'string "type"'),
    ('{"type": 3}', 'string "type"'),
    ('{"type":"text"}', "missing ['content']"),
    ('{"type":"text","content":"hi","extra":1}', "extra ['extra']"),
    ('{"type":"config_applied","ok":true}', "extra ['ok']"),
    ('{"type":"text","content":7}', "'content' must be a string"),
    ('{"type":"ready","session":null,"upstream_version":"2.6"}', "'session' must be a string"),
    ('{"type":"queued","position":0,"eta_s":1.0}', "'position' must be a whole number, 1 or more"),
    ('{"type":"queued","position":1.5,"eta_s":1.0}', "'position' must be a whole number"),
    ('{"type":"queued","position":true,"eta_s":1.0}', "'position' must be a whole number"),
    ('{"type":"queued","position":1,"eta_s":-1}', "'eta_s' must be a finite number"),
    ('{"type":"queued","position":1,"eta_s":"soon"}', "'eta_s' must be a finite number"),
    ('{"type":"queued","position":1,"eta_s":Infinity}', "'eta_s' must be a finite number"),
    ('{"type":"turn_end","reason":"done"}', "'reason' must be one of"),
    ('{"type":"speech_started","audio_start_ms":-5}', "'audio_start_ms' must be a whole number"),
    ('{"type":"speech_stopped","audio_end_ms":1.5}', "'audio_end_ms' must be a whole number"),
    ('{"type":"error","error":"x","code":400,"message":"m"}', "'code' must be a WebSocket close code"),
    ('{"type":"error","error":"x","code":"1011","message":"m"}', "'code' must be a whole number"),
])
def test_a_malformed_text_frame_is_an_error_quoting_it(frame: str, problem: str) -> None:
    with pytest.raises(BadProxyMessage) as caught:
        decode_message(frame)
    assert not isinstance(caught.value, UnknownProxyMessage)
    assert problem in str(caught.value) and frame[:20] in str(caught.value), str(caught.value)


@pytest.mark.parametrize("frame", [b"", b"\x01", bytes(641)])
def test_binary_frames_must_be_whole_samples(frame: bytes) -> None:
    with pytest.raises(BadProxyMessage, match=f"binary frame of {len(frame)} bytes"):
        decode_message(frame)


def test_a_long_frame_is_quoted_in_part() -> None:
    with pytest.raises(BadProxyMessage) as caught:
        decode_message(json.dumps({"type": "text", "content": "x" * 10_000, "more": 1}))
    assert len(str(caught.value)) < 400


def test_controls_encode_to_what_the_server_half_parses() -> None:
    config = ConfigControl({"assistantPrompt": "Be brief.", "vadThreshold": 0.8})
    for control in (StopControl(), config):
        assert parse_control(encode_control(control), max_chars=4096) == control
    with pytest.raises(ValueError, match="'type'"):
        encode_control(ConfigControl({"type": "stop"}))


def test_the_client_follows_queue_ready_replies_and_errors() -> None:
    client = NativeClient()
    assert not client.is_ready and client.queue_position is None
    events: list[ServerEvent] = [
        Queued(2, 240.0), Queued(1, 120.0), Ready("abc", "2.6"),
        ReplyText("Hello"), ReplyAudio(PCM, 16_000), ReplyText(" there"), ReplyAudio(PCM[:64], 16_000),
    ]
    frames = [frame for event in events for frame in encode(event)]
    for frame in frames[:2]:
        client.receive(frame)
    assert client.queue_position == 1 and not client.is_ready
    for frame in frames[2:]:
        client.receive(frame)
    assert client.is_ready and (client.session_id, client.upstream_version) == ("abc", "2.6")
    assert client.queue_position is None
    assert client.reply_in_progress and client.reply_text == "Hello there"
    assert client.reply_audio_bytes == len(PCM) + 64

    ended = client.receive(encode(ReplyEnded("complete"))[0])
    assert ended == TurnEndMessage("complete")
    assert not client.reply_in_progress and client.reply_text == "" and client.reply_audio_bytes == 0
    assert client.replies == [FinishedReply("Hello there", len(PCM) + 64, "complete")]
    assert client.replies[0].audio_ms == pytest.approx((len(PCM) + 64) / 32)

    client.receive(encode(ReplyAudio(PCM, 16_000))[0])
    client.receive(encode(ReplyEnded("stopped", stopped_by="client"))[0])
    error = ErrorEvent("reply_audio_dropped", "reading too slowly", 1008)
    client.receive(encode(error)[0])
    assert client.replies[1] == FinishedReply("", len(PCM), "stopped")
    assert client.errors == [ErrorMessage("reply_audio_dropped", 1008, "reading too slowly")]


def test_a_bad_frame_leaves_the_client_as_it_was() -> None:
    client = NativeClient()
    client.receive(encode(ReplyText("Hi"))[0])
    with pytest.raises(UnknownProxyMessage):
        client.receive('{"type":"goodbye"}')
    assert client.reply_in_progress and client.reply_text == "Hi" and client.replies == []
