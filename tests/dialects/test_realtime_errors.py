"""Bad client events: each answered with the error event the real API sends, socket kept."""

from __future__ import annotations

import json

import pytest

from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.realtime.dialect import max_event_chars
from asgi_audio_proxy.events import ErrorEvent, Ready
from tests.signals import tone

from .realtime_support import Recorder, append, client, dialect, rejected


@pytest.fixture
def rec() -> Recorder:
    r = Recorder(dialect())
    r.send(Ready("sess", "2.6"))
    return r


def test_malformed_json(rec: Recorder) -> None:
    error = rejected(rec, '{"type": "input_audio_buffer.append", ')
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_json")


@pytest.mark.parametrize("frame", ["[1, 2]", '"text"', "{}", '{"type": 3}'])
def test_not_an_event_object(rec: Recorder, frame: str) -> None:
    assert rejected(rec, frame)["type"] == "invalid_request_error"


def test_unknown_event_type_names_the_param_and_the_event(rec: Recorder) -> None:
    error = rejected(rec, client("response.make", event_id="evt_7"))
    assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "evt_7")
    assert "Supported values are" in error["message"]


def test_output_audio_buffer_clear_is_for_webrtc_only(rec: Recorder) -> None:
    error = rejected(rec, client("output_audio_buffer.clear"))
    assert (error["code"], error["param"]) == ("unsupported_event", "type")


@pytest.mark.parametrize(("kind", "code"), [("conversation.item.delete", "item_delete_invalid_item_id"),
                                            ("conversation.item.retrieve", "item_retrieve_invalid_item_id")])
def test_unknown_items_are_refused_as_the_api_does(rec: Recorder, kind: str, code: str) -> None:
    error = rejected(rec, client(kind, item_id="x"))
    assert (error["code"], error["param"]) == (code, "item_id")


def test_an_item_without_an_item_is_refused(rec: Recorder) -> None:
    error = rejected(rec, client("conversation.item.create"))
    assert (error["code"], error["param"]) == ("missing_required_parameter", "item")


def test_base64_that_is_not(rec: Recorder) -> None:
    error = rejected(rec, client("input_audio_buffer.append", audio="not base64!", event_id="evt_b"))
    assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "audio", "evt_b")
    assert error["message"].startswith("Invalid 'audio'. Expected base64-encoded audio bytes")


def test_audio_in_the_wrong_format(rec: Recorder) -> None:
    wav = b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(32)
    assert rejected(rec, append(wav))["param"] == "audio"
    assert rejected(rec, client("input_audio_buffer.append"))["code"] == "missing_required_parameter"


def test_oversized_append(rec: Recorder) -> None:
    limit = max_event_chars(ProxyConfig())
    big = append(bytes(3 * limit // 4 + 3))
    assert len(big) > limit
    error = rejected(rec, big)
    assert (error["type"], error["code"]) == ("invalid_request_error", "message_too_large")
    # the largest audio that fits is max_message_bytes
    assert len(append(bytes(ProxyConfig().max_message_bytes))) <= limit


def test_binary_frames_are_refused(rec: Recorder) -> None:
    assert rejected(rec, tone(440, 0.1, 24_000))["code"] == "invalid_type"


def test_errors_keep_the_socket_open_and_the_dialect_working(rec: Recorder) -> None:
    for frame in ("{", client("nope"), client("input_audio_buffer.append", audio="@@")):
        rejected(rec, frame)
    assert rec.receive(append(tone(440, 0.1, 24_000)))
    assert all(not e.get("error", {}).get("fatal") for e in rec.events)


def test_the_sessions_own_errors_are_shaped_too(rec: Recorder) -> None:
    [flood] = rec.send(ErrorEvent("policy_violation", "more than 20 control messages per second", 1008, True))
    assert flood["error"] == {"type": "invalid_request_error", "code": "policy_violation",
                              "message": "more than 20 control messages per second", "param": None,
                              "event_id": None}
    [upstream] = rec.send(ErrorEvent("upstream_timeout", "no reply", 1011))
    assert upstream["error"]["type"] == "server_error"


def test_error_event_ids_are_unique_and_json_compact(rec: Recorder) -> None:
    frames = [rec.d.send(ErrorEvent("bad_payload", f"m{i}", 1007)) for i in range(3)]
    ids = {json.loads(f[0])["event_id"] for f in frames}
    assert len(ids) == 3 and all(", " not in f[0] for f in frames)
