"""A turn on the wire: audio in, the reply's events in the order strict clients require,
manual turns, cancel, truncate, barge-in, G.711 and text-only output."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from asgi_audio_proxy.audio.g711 import ulaw_to_pcm16
from asgi_audio_proxy.events import (
    AudioIn,
    ClearInput,
    CommitInput,
    DialectFrames,
    ErrorEvent,
    Ready,
    ReplyAudio,
    ReplyEnded,
    ReplyStarted,
    ReplyText,
    SpeechStarted,
    SpeechStopped,
    StopReply,
)
from tests.signals import tone

from .realtime_support import Recorder, append, client, dialect, rejected, types

#: the order openai-realtime-api-beta enforces (CLIENT_DIALECTS.md), GA names
GA_REPLY = [
    "response.created", "response.output_item.added", "conversation.item.added",
    "response.content_part.added", "response.output_audio_transcript.delta", "response.output_audio.delta",
    "response.output_audio.delta", "response.output_audio.done", "response.output_audio_transcript.done",
    "response.content_part.done", "response.output_item.done", "conversation.item.done", "response.done",
]
USER_TURN = ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]


def speak_and_reply(rec: Recorder, reply_pcm: bytes) -> None:
    rec.send(Ready("sess", "2.6"))
    [audio_in] = rec.receive(append(tone(440, 0.5, 24_000)))
    assert audio_in == AudioIn(tone(440, 0.5, 24_000), 24_000, wire_bytes=len(tone(440, 0.5, 24_000)))
    rec.send(SpeechStarted(audio_start_ms=20))
    rec.send(SpeechStopped(audio_end_ms=480))
    rec.send(ReplyStarted())
    rec.send(ReplyText("Hello"))
    rec.send(ReplyAudio(reply_pcm, 24_000))
    rec.send(ReplyEnded("complete"))


def test_server_vad_turn_has_every_event_in_order_with_matching_ids() -> None:
    rec = Recorder(dialect())
    speak_and_reply(rec, tone(440, 0.15, 24_000))
    assert types(rec.events) == ["session.created", "input_audio_buffer.speech_started",
                                 "input_audio_buffer.speech_stopped", *USER_TURN, *GA_REPLY]
    started, committed, created = rec.events[1], rec.events[3], rec.events[6]
    assert started["item_id"] == committed["item_id"] == rec.events[4]["item"]["id"]
    assert started["audio_start_ms"] == 20 and rec.events[2]["audio_end_ms"] == 480
    response_id, item = created["response"]["id"], rec.events[7]["item"]
    assert rec.events[8]["previous_item_id"] == committed["item_id"]
    for event in rec.events[7:-1]:
        assert event.get("response_id", response_id) == response_id
        assert event.get("item_id", item["id"]) == item["id"]
    done = rec.events[-1]["response"]
    assert (done["status"], done["output"][0]["content"][0]["transcript"]) == ("completed", "Hello")
    assert len({event["event_id"] for event in rec.events}) == len(rec.events)


def test_reply_audio_goes_out_in_deltas_of_100_ms_at_most_and_whole() -> None:
    rec = Recorder(dialect())
    pcm = tone(440, 0.25, 24_000)
    speak_and_reply(rec, pcm)
    deltas = [base64.b64decode(e["delta"]) for e in rec.events if e["type"] == "response.output_audio.delta"]
    assert [len(d) for d in deltas] == [4800, 4800, 2400]
    assert b"".join(deltas) == pcm


def test_beta_turn_uses_beta_names() -> None:
    rec = Recorder(dialect(beta=True))
    speak_and_reply(rec, tone(440, 0.1, 24_000))
    names = types(rec.events)
    assert "conversation.item.created" in names and "conversation.item.done" not in names
    assert "response.audio.delta" in names and "response.audio_transcript.done" in names
    assert names[-1] == "response.done"


def test_manual_turns_commit_drives_the_turn() -> None:
    rec = Recorder(dialect())
    rec.send(Ready("sess", "2.6"))
    rec.receive(client("session.update", session={"audio": {"input": {"turn_detection": None}}}))
    rec.receive(append(tone(440, 0.05, 24_000)))
    assert rejected(rec, client("input_audio_buffer.commit"))["code"] == "input_audio_buffer_commit_empty"
    rec.receive(append(tone(440, 0.2, 24_000)))
    frames, commit = rec.receive(client("input_audio_buffer.commit"))
    assert isinstance(frames, DialectFrames) and commit == CommitInput()
    [created] = rec.receive(client("response.create"))  # the committed turn's reply is coming
    assert isinstance(created, DialectFrames)
    rec.receive(append(tone(440, 0.2, 24_000)))  # the app streams on: no commit of its own
    rec.send(SpeechStarted(audio_start_ms=300))
    rec.send(ReplyStarted())
    assert types(rec.events)[-len(USER_TURN) - 4:] == [*USER_TURN, *GA_REPLY[:4]]
    assert types(rec.events).count("input_audio_buffer.committed") == 1
    assert not [name for name in types(rec.events) if name.startswith("input_audio_buffer.speech")]


def test_clear_drops_uncommitted_audio() -> None:
    rec = Recorder(dialect())
    rec.receive(append(tone(440, 0.3, 24_000)))
    clear, frames = rec.receive(client("input_audio_buffer.clear"))
    assert clear == ClearInput() and isinstance(frames, DialectFrames)
    assert types(rec.events)[-1] == "input_audio_buffer.cleared"
    assert rejected(rec, client("input_audio_buffer.commit"))["code"] == "input_audio_buffer_commit_empty"


def test_response_create_while_active_is_an_error_and_with_no_audio_a_failed_response() -> None:
    rec = Recorder(dialect())
    rec.send(Ready("sess", "2.6"))
    rec.receive(client("response.create"))
    assert types(rec.events)[-2:] == ["response.created", "response.done"]
    failed = rec.events[-1]["response"]
    assert (failed["status"], failed["status_details"]["error"]["code"]) == ("failed", "no_user_audio")
    rec.receive(append(tone(440, 0.2, 24_000)))
    assert CommitInput() in rec.receive(client("response.create"))
    rec.send(ReplyStarted())
    error = rejected(rec, client("response.create", event_id="evt_9"))
    assert (error["code"], error["event_id"]) == ("conversation_already_has_active_response", "evt_9")


@pytest.mark.parametrize(("stopped_by", "reason"),
                         [("client", "client_cancelled"), ("voice", "turn_detected")])
def test_cancel_cuts_the_reply_and_nothing_of_it_follows(stopped_by: str, reason: str) -> None:
    rec = Recorder(dialect())
    rec.send(Ready("sess", "2.6"))
    rec.receive(append(tone(440, 0.3, 24_000)))
    rec.send(ReplyStarted())
    rec.send(ReplyAudio(tone(440, 0.1, 24_000), 24_000))
    if stopped_by == "client":
        assert rec.receive(client("response.cancel")) == [StopReply("client")]
        assert rejected(rec, client("response.cancel"))["code"] == "response_cancel_not_active"
    rec.send(ReplyAudio(tone(440, 0.1, 24_000), 24_000))
    rec.send(ReplyText("late"))
    rec.send(ReplyEnded("stopped", stopped_by=stopped_by))  # type: ignore[arg-type]
    names = types(rec.events)
    if stopped_by == "client":  # a voice cut comes from the session: what it sent before went out
        assert names.count("response.output_audio.delta") == 1
        assert "response.output_audio_transcript.delta" not in names
    done = rec.events[-1]["response"]
    assert (done["status"], done["status_details"]["reason"]) == ("cancelled", reason)
    assert done["output"][0]["status"] == "incomplete"
    assert rejected(rec, client("response.cancel"))["code"] == "response_cancel_not_active"


def test_truncate_accepts_zero_and_refuses_past_the_audio_sent() -> None:
    rec = Recorder(dialect())
    speak_and_reply(rec, tone(440, 0.2, 24_000))
    item_id = rec.events[-1]["response"]["output"][0]["id"]
    rec.receive(client("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=0))
    assert rec.events[-1] == {**rec.events[-1], "type": "conversation.item.truncated", "audio_end_ms": 0}
    rec.receive(client("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=200))
    error = rejected(rec, client("conversation.item.truncate", item_id=item_id, content_index=0,
                                 audio_end_ms=900))
    assert (error["param"], error["code"]) == ("audio_end_ms", "invalid_value")
    assert rejected(rec, client("conversation.item.truncate", item_id="item_nope", content_index=0,
                                audio_end_ms=0))["param"] == "item_id"
    assert rejected(rec, client("conversation.item.truncate", content_index=0, audio_end_ms=0))["code"] == (
        "missing_required_parameter")


def test_g711_in_and_out_at_8_khz() -> None:
    rec = Recorder(dialect())
    rec.send(Ready("sess", "2.6"))
    pcmu = {"type": "audio/pcmu"}
    formats = {"audio": {"input": {"format": pcmu}, "output": {"format": pcmu}}}
    rec.receive(client("session.update", session=formats))
    assert rec.d.output_rate_hz == 8000
    ulaw = bytes(range(256)) * 4
    [audio_in] = rec.receive(append(ulaw))
    assert (audio_in.pcm, audio_in.rate_hz) == (ulaw_to_pcm16(ulaw), 8000)
    rec.send(ReplyStarted())
    rec.send(ReplyAudio(tone(440, 0.2, 8000), 8000))
    deltas = [base64.b64decode(e["delta"]) for e in rec.events if e["type"] == "response.output_audio.delta"]
    assert [len(d) for d in deltas] == [800, 800]
    heard = np.frombuffer(ulaw_to_pcm16(b"".join(deltas)), "<i2").astype(float)
    sent = np.frombuffer(tone(440, 0.2, 8000), "<i2").astype(float)
    assert np.max(np.abs(heard - sent)) < 300  # mu-law's quantisation step at this level


def test_reply_at_another_rate_is_resampled_when_the_format_changed_under_it() -> None:
    rec = Recorder(dialect())
    rec.receive(client("session.update", session={"audio": {"output": {"format": {"type": "audio/pcma"}}}}))
    rec.send(ReplyStarted())
    rec.send(ReplyAudio(tone(440, 0.3, 24_000), 24_000))
    deltas = [base64.b64decode(e["delta"]) for e in rec.events if e["type"] == "response.output_audio.delta"]
    assert abs(sum(len(d) for d in deltas) - 2400) <= 64  # 0.3 s at 8 kHz, one byte a sample


def test_text_only_sessions_get_text_events_and_no_audio() -> None:
    rec = Recorder(dialect())
    rec.receive(client("session.update", session={"output_modalities": ["text"]}))
    rec.send(ReplyStarted())
    rec.send(ReplyText("Hi"))
    rec.send(ReplyAudio(tone(440, 0.1, 24_000), 24_000))
    rec.send(ReplyEnded("complete"))
    names = types(rec.events)
    assert "response.output_text.delta" in names and "response.output_text.done" in names
    assert not any("audio" in name for name in names)


def test_fatal_error_mid_reply_closes_the_response_as_failed_first() -> None:
    rec = Recorder(dialect())
    rec.send(ReplyStarted())
    rec.send(ErrorEvent("upstream_unavailable", "the model server went away", 1011, fatal=True))
    assert types(rec.events)[-2:] == ["response.done", "error"]
    assert rec.events[-2]["response"]["status"] == "failed"
    assert rec.events[-1]["error"]["type"] == "server_error"


def test_reply_without_a_start_still_opens_its_response() -> None:
    rec = Recorder(dialect())
    rec.send(ReplyAudio(tone(440, 0.05, 24_000), 24_000))
    rec.send(ReplyEnded("interrupted"))
    assert types(rec.events)[1] == "response.created"
    assert rec.events[-1]["response"]["status"] == "failed"
