"""What voice-agent frameworks ask of a Realtime session beyond a spoken turn: turn events that
follow ``turn_detection``, ``response.create`` with its parameters (and a life cycle when there is
nothing to answer), conversation items, and ``session.update`` at any time. Every server event is
checked against the official SDK's types."""

from __future__ import annotations

import base64
from typing import Any

from asgi_audio_proxy.dialects.realtime.reply import REPLY_WAIT_MS
from asgi_audio_proxy.events import (
    AudioIn,
    CommitInput,
    ConfigApplied,
    ConfigKept,
    Configure,
    DialectFrames,
    Ready,
    ReplyEnded,
    ReplyStarted,
    ReplyText,
    SpeechStarted,
    SpeechStopped,
)
from tests.signals import tone

from .realtime_support import Recorder, append, client, dialect, rejected, types

MANUAL = {"audio": {"input": {"turn_detection": None}}}


def opened(**config: Any) -> Recorder:
    rec = Recorder(dialect(**config))
    rec.send(Ready("sess", "2.6"))
    return rec


def last(rec: Recorder, kind: str) -> dict[str, Any]:
    return [event for event in rec.events if event["type"] == kind][-1]


def test_manual_turns_get_no_speech_events_and_only_the_clients_commits() -> None:
    rec = opened()
    rec.receive(client("session.update", session=MANUAL))
    rec.receive(append(tone(440, 0.3, 24_000)))
    rec.send(SpeechStarted(audio_start_ms=10))
    rec.send(SpeechStopped(audio_end_ms=290))
    rec.receive(client("input_audio_buffer.commit"))
    rec.receive(client("response.create"))
    rec.receive(append(bytes(4800)))  # the app keeps streaming its microphone
    rec.send(ReplyStarted())
    rec.send(ReplyEnded("complete"))
    names = types(rec.events)
    assert not [name for name in names if name.startswith("input_audio_buffer.speech")]
    assert names.count("input_audio_buffer.committed") == 1
    assert names.index("input_audio_buffer.committed") < names.index("response.created")


def test_server_vad_commit_the_detector_did_not_hear_is_bracketed_for_the_same_item() -> None:
    rec = opened()
    rec.receive(append(tone(440, 0.4, 24_000)))  # heard by the model, not by the detector
    rec.send(ReplyStarted())
    names = types(rec.events)
    started, stopped, committed = (last(rec, "input_audio_buffer." + kind)
                                   for kind in ("speech_started", "speech_stopped", "committed"))
    order = [names.index("input_audio_buffer." + kind) for kind in ("speech_started", "speech_stopped",
                                                                       "committed")]
    assert order == sorted(order)
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert (started["audio_start_ms"], stopped["audio_end_ms"]) == (0, 400)


def test_a_start_without_a_stop_gets_its_stop_and_a_late_stop_is_dropped() -> None:
    rec = opened()
    rec.receive(append(tone(440, 0.4, 24_000)))
    rec.send(SpeechStarted(audio_start_ms=40))
    rec.send(ReplyStarted())
    rec.send(SpeechStopped(audio_end_ms=420))  # the detector, after the model ended the turn
    rec.send(ReplyEnded("complete"))
    names = types(rec.events)
    assert names.count("input_audio_buffer.speech_started") == 1
    assert names.count("input_audio_buffer.speech_stopped") == 1
    stopped = last(rec, "input_audio_buffer.speech_stopped")
    assert stopped["item_id"] == last(rec, "input_audio_buffer.committed")["item_id"]


def test_response_create_metadata_is_echoed_in_created_and_done() -> None:
    rec = opened()
    rec.receive(append(tone(440, 0.3, 24_000)))
    metadata = {"client_event_id": "lk_1"}
    events = rec.receive(client("response.create", response={"metadata": metadata, "instructions": "x"}))
    assert CommitInput() in events
    assert last(rec, "response.created")["response"]["metadata"] == metadata
    rec.send(ReplyStarted())
    rec.send(ReplyText("Hi"))
    rec.send(ReplyEnded("complete"))
    done = last(rec, "response.done")["response"]
    assert done["metadata"] == metadata and done["id"] == last(rec, "response.created")["response"]["id"]
    assert types(rec.events).count("response.created") == 1


def test_nothing_to_answer_is_a_failed_response_never_an_error() -> None:
    rec = opened()
    rec.receive(client("response.create", response={"metadata": {"k": "v"}}))
    created, done = rec.events[-2:]
    assert (created["type"], done["type"]) == ("response.created", "response.done")
    assert done["response"]["id"] == created["response"]["id"]
    assert done["response"]["metadata"] == {"k": "v"}
    assert done["response"]["status"] == "failed"
    assert done["response"]["status_details"]["error"]["code"] == "no_user_audio"
    assert "error" not in types(rec.events)


def test_silence_committed_fails_its_response_at_once() -> None:
    rec = opened()
    rec.receive(append(bytes(48_000)))  # a second of silence
    rec.receive(client("response.create"))
    done = last(rec, "response.done")["response"]
    assert (done["status"], done["status_details"]["error"]["code"]) == ("failed", "input_audio_silent")
    assert "error" not in types(rec.events)


def test_a_response_the_model_never_starts_fails_after_the_wait() -> None:
    rec = opened()
    rec.receive(client("session.update", session=MANUAL))
    rec.receive(append(tone(440, 0.3, 24_000)))
    rec.receive(client("input_audio_buffer.commit"))
    rec.receive(client("response.create"))
    second = bytes(48_000)
    for _ in range(int(REPLY_WAIT_MS // 1000)):
        rec.receive(append(second))
    assert "response.done" not in types(rec.events)
    rec.receive(append(second))
    done = last(rec, "response.done")["response"]
    assert (done["status"], done["status_details"]["error"]["code"]) == ("failed", "reply_timeout")
    rec.receive(append(tone(440, 0.3, 24_000)))
    rec.receive(client("input_audio_buffer.commit"))
    rec.receive(client("response.create"))  # the conversation goes on
    assert types(rec.events)[-1] == "response.created"


def test_cancel_before_the_model_starts_ends_the_response() -> None:
    rec = opened()
    rec.receive(append(tone(440, 0.3, 24_000)))
    rec.receive(client("response.create"))
    rec.receive(client("response.cancel"))
    done = last(rec, "response.done")["response"]
    assert (done["status"], done["status_details"]["reason"]) == ("cancelled", "client_cancelled")


def test_system_item_is_acknowledged_and_folded_into_the_instructions() -> None:
    rec = opened()
    rec.receive(client("session.update", session={"instructions": "Be brief."}))
    item = {"id": "sys_1", "type": "message", "role": "system",
            "content": [{"type": "input_text", "text": "You are a pirate."}]}
    events = rec.receive(client("conversation.item.create", item=item))
    assert types(rec.events)[-2:] == ["conversation.item.added", "conversation.item.done"]
    assert rec.events[-1]["item"]["id"] == "sys_1" and rec.events[-1]["item"]["status"] == "completed"
    [configure] = [e for e in events if isinstance(e, Configure)]
    assert configure.options == {"assistantPrompt": "Be brief.\n\nYou are a pirate."}
    assert not configure.acknowledge


def test_user_audio_item_is_spoken_to_the_model_and_answered_on_request() -> None:
    rec = opened()
    pcm = tone(440, 0.3, 24_000)
    item = {"type": "message", "role": "user",
            "content": [{"type": "input_audio", "audio": base64.b64encode(pcm).decode()}]}
    events = rec.receive(client("conversation.item.create", item=item))
    assert [e for e in events if isinstance(e, AudioIn)] == [AudioIn(pcm, 24_000, wire_bytes=len(pcm))]
    added = last(rec, "conversation.item.added")["item"]
    assert "audio" not in added["content"][0] and added["id"].startswith("item_")
    events = rec.receive(client("response.create"))
    assert CommitInput() in events and types(rec.events)[-1] == "response.created"


def test_text_items_are_kept_retrieved_and_deleted() -> None:
    rec = opened()
    item = {"id": "u_1", "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Hello"}]}
    events = rec.receive(client("conversation.item.create", item=item))
    assert all(isinstance(e, DialectFrames) for e in events)
    rec.receive(client("conversation.item.retrieve", item_id="u_1"))
    assert last(rec, "conversation.item.retrieved")["item"]["content"] == item["content"]
    rec.receive(client("conversation.item.delete", item_id="u_1"))
    assert last(rec, "conversation.item.deleted")["item_id"] == "u_1"
    assert rejected(rec, client("conversation.item.retrieve", item_id="u_1"))["code"] == \
        "item_retrieve_invalid_item_id"


def test_a_committed_turn_and_a_reply_can_be_retrieved() -> None:
    rec = opened()
    rec.receive(append(tone(440, 0.3, 24_000)))
    rec.send(ReplyStarted())
    rec.send(ReplyText("Hi"))
    rec.send(ReplyEnded("complete"))
    for kind in ("input_audio_buffer.committed", "response.output_item.done"):
        event = last(rec, kind)
        item_id = event.get("item_id") or event["item"]["id"]
        rec.receive(client("conversation.item.retrieve", item_id=item_id))
        assert last(rec, "conversation.item.retrieved")["item"]["id"] == item_id


def test_session_update_after_the_first_audio_is_answered_with_the_session_in_effect() -> None:
    rec = opened()
    rec.receive(client("session.update", session={"instructions": "Be brief."}))
    rec.send(ConfigApplied())  # the upstream took it, before the first audio
    rec.receive(append(tone(440, 0.2, 24_000)))
    events = rec.receive(client("session.update", session={
        "instructions": "Be verbose.", "output_modalities": ["text"]}))
    # the new prompt goes to the session, which asks the upstream kind; MiniCPM-o's keeps its own
    assert [e for e in events if not isinstance(e, DialectFrames)] == [
        Configure({"assistantPrompt": "Be verbose."})]
    rec.send(ConfigKept("this upstream takes options when the conversation opens only"))
    session = last(rec, "session.updated")["session"]
    assert session["instructions"] == "Be brief."  # MiniCPM-o keeps the prompt it started with
    assert session["output_modalities"] == ["text"]  # the proxy's own choice applies at once
    assert "error" not in types(rec.events)
