"""Wire formats of the model server (sections 2.2, 2.4, 3.2, 3.3, 4.1-4.3, 7)."""

from __future__ import annotations

import base64
import json

import pytest

from asgi_audio_proxy.audio.wav import pcm16_to_wav
from asgi_audio_proxy.config import UpstreamOptions
from asgi_audio_proxy.errors import UpstreamProtocolError
from asgi_audio_proxy.upstreams.minicpm.wire import (
    Ack,
    AudioMessages,
    ReplyError,
    ReplyMessage,
    ack_error,
    audio_message,
    init_options_body,
    make_uid,
    parse_ack,
    parse_reply_data,
    parse_version,
)


def test_s3_2_audio_message_shape() -> None:
    payload = json.loads(audio_message(bytes(6400), "K3Q9ZT7WBA", 1718000000123))
    item = payload["messages"][0]["content"][0]
    assert payload["messages"][0]["role"] == "user"
    assert item["type"] == "input_audio"
    assert item["input_audio"]["format"] == "wav"
    assert item["input_audio"]["timestamp"] == "1718000000123"
    wav = base64.b64decode(item["input_audio"]["data"])
    assert wav[:4] == b"RIFF" and len(wav) == 6444


@pytest.mark.parametrize("uid", ["K3Q9ZT7WBA", 'a"quote\\back\u00e9\u2028', "@data@", '"@timestamp@"', ""])
def test_s3_2_audio_message_is_the_text_json_dumps_makes(uid: str) -> None:
    """The envelope is made once per conversation; every message is still ``json.dumps``'s text,
    even for a uid spelled like the envelope's stand-ins."""
    pcm = bytes(range(256)) * 25
    data = base64.b64encode(pcm16_to_wav(pcm)).decode("ascii")
    item = {"type": "input_audio", "input_audio": {"data": data, "format": "wav", "timestamp": "7"}}
    expected = json.dumps({"uid": uid, "messages": [{"role": "user", "content": [item]}]},
                          separators=(",", ":"))
    messages = AudioMessages(uid)
    assert messages.message(pcm, 7) == expected
    assert messages.message(pcm, 7) == expected  # the envelope is reused, unchanged
    assert audio_message(pcm, uid, 7) == expected


def test_s5_6_init_options_always_carries_all_five_keys() -> None:
    body = init_options_body(UpstreamOptions(vad_threshold=0.5, audio_format="mp3"))
    audio, options = body["messages"][0]["content"]
    assert audio == {"type": "input_audio", "input_audio": {"data": "", "format": "mp3"}}
    assert set(options["options"]) == {"hd_video", "use_audio_prompt", "vad_threshold",
                                       "voice_clone_prompt", "assistant_prompt"}
    assert options["options"]["vad_threshold"] == 0.5


def test_s2_2_version_probe() -> None:
    response = {"id": "X", "choices": {"role": "assistant", "content": "4.5", "finish_reason": "done"}}
    assert parse_version(response) == "4.5"
    with pytest.raises(UpstreamProtocolError):
        parse_version({"detail": "nope"})


def test_uids_look_like_the_official_clients() -> None:
    uid = make_uid()
    assert len(uid) == 10 and uid.isalnum() and uid.upper() == uid
    assert make_uid() != uid


@pytest.mark.parametrize(("frame", "ack"), [
    ('{"id":"X","choices":{"role":"assistant","content":"success","finish_reason":"done"}}', Ack("done")),
    ('{"id":"X","choices":{"role":"assistant","content":"success","finish_reason":"skip"}}', Ack("skip")),
    ('{"id":"X","choices":{"role":"assistant","content":"success","finish_reason":""}}', Ack("")),
    ('{"error":"UID changed in stream"}', Ack(None, "UID changed in stream")),
])
def test_s3_3_acks(frame: str, ack: Ack) -> None:
    assert parse_ack(frame) == ack


@pytest.mark.parametrize("frame", ["not json", "[]", '{"choices": []}', '{"error": 3}'])
def test_s3_3_garbage_acks_are_protocol_errors(frame: str) -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_ack(frame)


def test_s4_1_reply_message() -> None:
    data = ('{"id": "K3Q9ZT7WBA", "response_id": 41, "choices": [{"role": "assistant", '
            '"audio": "UklGRg==", "text": "Paris is the", "finish_reason": "processing"}]}')
    assert parse_reply_data(data) == ReplyMessage("Paris is the", "UklGRg==", 41)


@pytest.mark.parametrize("audio", ["null", '""', None])
def test_s7_end_marker_audio_null_empty_or_missing(audio: str | None) -> None:
    field = f'"audio": {audio}, ' if audio else ""
    data = '{"id": "X", "response_id": 2, "choices": [{' + field + '"text": "\\n<end>"}]}'
    assert parse_reply_data(data) == ReplyMessage("\n<end>", None, 2)


def test_s4_3_server_error_line() -> None:
    assert parse_reply_data('{"error": "name \'exc\' is not defined"}') == ReplyError(
        "name 'exc' is not defined")


@pytest.mark.parametrize("data", ["{not json", "[1]", '{"choices": "x"}', '{"choices": [{"text": 5}]}'])
def test_s4_malformed_sse_data_is_a_protocol_error(data: str) -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_reply_data(data)


def test_s5_1_uid_takeover_ack_is_an_upstream_error_other_errors_are_protocol_errors() -> None:
    from asgi_audio_proxy.errors import UpstreamError

    takeover = ack_error("UID changed in stream")
    assert type(takeover) is UpstreamError and takeover.close_code == 1011
    assert isinstance(ack_error("Invalid request format"), UpstreamProtocolError)
