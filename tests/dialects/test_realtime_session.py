"""session.created / session.update / session.updated: deep merge, GA and beta shapes, options."""

from __future__ import annotations

import base64
import json

from asgi_audio_proxy.events import (
    ConfigApplied,
    ConfigKept,
    Configure,
    DialectFrames,
    ErrorEvent,
    Queued,
    Ready,
)

from .realtime_support import Recorder, client, dialect, rejected, types


def test_session_created_first_and_only_once() -> None:
    rec = Recorder(dialect())
    rec.send(Queued(position=1, eta_s=3.0))
    rec.send(Ready("sess", "2.6"))
    assert types(rec.events) == ["session.created"]
    session = rec.events[0]["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"


def test_session_created_goes_before_an_answer_to_a_client_that_spoke_first() -> None:
    rec = Recorder(dialect())
    rec.receive(client("session.update", session={"type": "realtime", "tracing": "auto"}))
    rec.send(Ready("sess", "2.6"))
    assert types(rec.events) == ["session.created", "session.updated"]
    assert rec.events[1]["session"]["tracing"] == "auto"


def test_update_is_deep_merged_unknown_fields_ignored_options_mapped() -> None:
    rec = Recorder(dialect())
    rec.send(Ready("sess", "2.6"))
    update = {"type": "realtime", "instructions": "Be brief.", "no_such_field": 1,
              "audio": {"input": {"turn_detection": {"threshold": 0.6}, "mystery": True},
                        "output": {"voice": "female"}}}
    [configure] = rec.receive(client("session.update", session=update))
    assert configure == Configure({"assistantPrompt": "Be brief.", "vadThreshold": 0.6, "useAudioPrompt": 2})
    assert types(rec.events) == ["session.created"]  # updated only once applied
    [updated] = rec.send(ConfigApplied())
    session = updated["session"]
    turn = session["audio"]["input"]["turn_detection"]
    assert (turn["type"], turn["threshold"], turn["silence_duration_ms"]) == ("server_vad", 0.6, 500)
    assert session["instructions"] == "Be brief."
    assert "no_such_field" not in session and "mystery" not in session["audio"]["input"]


def test_turn_detection_null_is_kept_and_changes_no_option() -> None:
    rec = Recorder(dialect())
    [answer] = rec.receive(client("session.update", session={"audio": {"input": {"turn_detection": None}}}))
    assert isinstance(answer, DialectFrames)
    assert rec.events[-1]["session"]["audio"]["input"]["turn_detection"] is None
    # a later update of something else keeps it null
    rec.receive(client("session.update", session={"audio": {"output": {"speed": 1.1}}}))
    assert rec.events[-1]["session"]["audio"]["input"]["turn_detection"] is None


def test_speech_cuts_replies_while_turn_detection_interrupts_them() -> None:
    """OpenAI's ``interrupt_response`` (on by default): the session's detector then cuts a reply
    the user talks over, as OpenAI's server does, under the proxy's default ``barge_in``."""
    d = dialect()
    rec = Recorder(d)
    assert d.wants_speech_cuts
    for turn_detection, cuts in (({"interrupt_response": False}, False), ({"type": "semantic_vad"}, True),
                                 (None, False), ({"type": "server_vad"}, True)):
        update = {"audio": {"input": {"turn_detection": turn_detection}}}
        rec.receive(client("session.update", session=update))
        assert d.wants_speech_cuts is cuts, turn_detection


def test_openai_voice_names_are_shown_but_keep_the_proxys_voice() -> None:
    rec = Recorder(dialect())
    [answer] = rec.receive(client("session.update", session={"audio": {"output": {"voice": "ash"}}}))
    assert isinstance(answer, DialectFrames)
    assert rec.events[-1]["session"]["audio"]["output"]["voice"] == "ash"


def test_unchanged_options_are_not_sent_again() -> None:
    rec = Recorder(dialect())
    assert isinstance(rec.receive(client("session.update", session={"instructions": "A"}))[0], Configure)
    rec.send(ConfigApplied())
    [answer] = rec.receive(client("session.update", session={"instructions": "A"}))
    assert isinstance(answer, DialectFrames)


def test_bad_update_is_an_error_and_leaves_the_session_as_it_was() -> None:
    rec = Recorder(dialect())
    bad = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}
    error = rejected(rec, client("session.update", session=bad, event_id="evt_1"))
    assert error["param"] == "session.audio.input.format.rate"
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_value")
    assert error["event_id"] == "evt_1"
    rec.receive(client("session.update", session={}))
    assert rec.events[-1]["session"]["audio"]["input"]["format"]["rate"] == 24000
    transcription = client("session.update", session={"type": "transcription"})
    assert rejected(rec, transcription)["param"] == "session.type"
    threshold = {"audio": {"input": {"turn_detection": {"threshold": 2}}}}
    assert rejected(rec, client("session.update", session=threshold))["param"].endswith("threshold")


def test_instructions_refused_when_the_operator_keeps_the_prompt() -> None:
    rec = Recorder(dialect(client_option_keys=frozenset({"vadThreshold"})))
    error = rejected(rec, client("session.update", session={"instructions": "x"}))
    assert (error["code"], error["param"]) == ("unsupported_parameter", "session.instructions")
    # a voice the operator keeps is shown, not applied, and not an error
    [answer] = rec.receive(client("session.update", session={"audio": {"output": {"voice": "male"}}}))
    assert isinstance(answer, DialectFrames)


def test_a_refused_configure_becomes_an_error_for_that_update() -> None:
    rec = Recorder(dialect())
    rec.send(Ready("sess", "2.6"))
    rec.receive(client("session.update", session={"instructions": "x"}, event_id="evt_up"))
    [error] = rec.send(ErrorEvent("policy_violation", "config must be sent before the first audio", 1008))
    assert error["error"]["event_id"] == "evt_up"
    assert types(rec.events) == ["session.created", "error"]
    # the option is sent again by the next update that asks for it
    assert isinstance(rec.receive(client("session.update", session={"instructions": "x"}))[0], Configure)


def test_beta_flat_session_maps_onto_the_same_code() -> None:
    rec = Recorder(dialect(beta=True))
    rec.send(Ready("sess", "2.6"))
    created = rec.events[0]["session"]
    assert (created["input_audio_format"], created["modalities"]) == ("pcm16", ["text", "audio"])
    update = {"instructions": "Hi.", "input_audio_format": "g711_ulaw", "output_audio_format": "g711_alaw",
              "turn_detection": {"type": "server_vad", "threshold": 0.7}, "voice": "alloy"}
    [configure] = rec.receive(client("session.update", session=update))
    assert configure == Configure({"assistantPrompt": "Hi.", "vadThreshold": 0.7})
    [updated] = rec.send(ConfigApplied())
    session = updated["session"]
    assert (session["input_audio_format"], session["output_audio_format"]) == ("g711_ulaw", "g711_alaw")
    assert rec.d.output_rate_hz == 8000
    assert json.dumps(session).count("audio/pcm") == 0


def test_text_only_output_is_accepted() -> None:
    rec = Recorder(dialect())
    rec.receive(client("session.update", session={"output_modalities": ["text"]}))
    assert rec.events[-1]["session"]["output_modalities"] == ["text"]
    assert rejected(rec, client("session.update", session={"output_modalities": []}))["param"] == (
        "session.output_modalities")


def test_update_after_the_first_audio_is_sent_and_shown_applied_or_kept() -> None:
    rec = Recorder(dialect())
    rec.send(Ready("sess", "2.6"))
    rec.receive(client("session.update", session={"instructions": "A"}))
    rec.send(ConfigApplied())
    rec.receive(client("input_audio_buffer.append", audio=base64.b64encode(bytes(4800)).decode()))
    # the session decides whether the upstream takes it now: the dialect asks, as before audio
    assert rec.receive(client("session.update", session={"instructions": "B"})) == [
        Configure({"assistantPrompt": "B"})]
    [updated] = rec.send(ConfigApplied())
    assert updated["session"]["instructions"] == "B"
    rec.receive(client("session.update", session={"instructions": "C", "audio": {"output": {"speed": 1.1}}}))
    [kept] = rec.send(ConfigKept("the upstream takes options at the start only"))
    assert kept["type"] == "session.updated"
    assert kept["session"]["instructions"] == "B"  # what the upstream still has
    assert kept["session"]["audio"]["output"]["speed"] == 1.1  # what it does not fix is taken
    # what the upstream has is what is compared: asking again is asking again
    assert rec.receive(client("session.update", session={"instructions": "C"})) == [
        Configure({"assistantPrompt": "C"})]


def test_an_update_the_upstream_refuses_is_answered_and_the_session_shows_what_it_still_has() -> None:
    rec = Recorder(dialect())
    rec.send(Ready("sess", "2.6"))
    rec.receive(client("session.update", session={"instructions": "A"}))
    rec.send(ConfigApplied())
    rec.receive(client("input_audio_buffer.append", audio=base64.b64encode(bytes(4800)).decode()))
    rec.receive(client("session.update", event_id="evt_b", session={"instructions": "B"}))
    [error] = rec.send(ErrorEvent("bad_payload", "the upstream refused the session update", 1007))
    assert error["type"] == "error" and error["error"]["event_id"] == "evt_b"
    # the next update shows the prompt the upstream still has, not the refused one
    rec.receive(client("session.update", session={"audio": {"output": {"speed": 1.1}}}))
    assert rec.events[-1]["type"] == "session.updated"
    assert rec.events[-1]["session"]["instructions"] == "A"
    # and asking for B again is asking again
    assert rec.receive(client("session.update", session={"instructions": "B"})) == [
        Configure({"assistantPrompt": "B"})]
