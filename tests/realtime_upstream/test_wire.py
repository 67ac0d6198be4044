"""The Realtime client's wire: the events it sends, checked field by field against the official
``openai`` types (GA and beta); every server event it reads, as the proxy's own Realtime dialect
writes them and as other servers do (extra fields, unknown events, both spellings); the errors
that end a conversation; the handshake's URL and headers; the settings' validation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import BaseModel

from asgi_audio_proxy.config import UpstreamOptions
from asgi_audio_proxy.errors import UpstreamBusy, UpstreamError, UpstreamProtocolError
from asgi_audio_proxy.events import (
    AudioIn,
    ClearInput,
    CommitInput,
    Configure,
    DialectFrames,
    Ready,
    ReplyAudio,
    ReplyEnded,
    ReplyStarted,
    ReplyText,
    StopReply,
)
from asgi_audio_proxy.upstreams.realtime import (
    Ignored,
    RealtimeSettings,
    ReplyPart,
    ResponseDone,
    ServerError,
    SessionInfo,
    SpeechActivity,
    append_audio,
    cancel_response,
    clear_audio,
    commit_audio,
    create_response,
    error_for,
    handshake_headers,
    parse_server_event,
    session_update,
    truncate_item,
    websocket_url,
)
from tests.dialects.realtime_support import OfficialEvents, client, dialect
from tests.signals import tone

GA = OfficialEvents("openai.types.realtime", "RealtimeClientEvent")
BETA = OfficialEvents("openai.types.beta.realtime", "RealtimeClientEvent")
OPTIONS = UpstreamOptions(assistant_prompt="Answer in one sentence.")
PCM = bytes(range(256)) * 3


def official(text: str, *, beta: bool) -> dict[str, Any]:
    """The event, validated strictly by the SDK's own type, with no field the type lacks."""
    event: dict[str, Any] = json.loads(text)
    model = (BETA if beta else GA).validate_python(event, strict=True)
    assert extras(model) == [], extras(model)
    return event


def extras(model: object, path: str = "") -> list[str]:
    """Fields the official type does not know, anywhere in ``model``."""
    if isinstance(model, list):
        return [name for i, item in enumerate(model) for name in extras(item, f"{path}[{i}]")]
    if not isinstance(model, BaseModel):
        return []
    found = [f"{path}.{name}" for name in (model.model_extra or {})]
    for name in type(model).model_fields:
        found += extras(getattr(model, name), f"{path}.{name}")
    return found


# -- client events ------------------------------------------------------------------------------

@pytest.mark.parametrize("turns", ["server", "proxy"])
def test_ga_session_update_carries_the_prompt_formats_voice_and_turn_detection(turns: str) -> None:
    settings = RealtimeSettings(voice="marin", turn_detection=turns)  # type: ignore[arg-type]
    event = official(session_update(OPTIONS, settings), beta=False)
    session = event["session"]
    assert session["type"] == "realtime"
    assert session["instructions"] == "Answer in one sentence."
    assert session["output_modalities"] == ["audio"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24_000}
    assert session["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24_000}, "voice": "marin"}
    detection = session["audio"]["input"]["turn_detection"]
    if turns == "server":  # the server ends turns; the proxy alone cuts replies
        assert detection == {"type": "server_vad", "create_response": True, "interrupt_response": False}
    else:
        assert detection is None


def test_ga_session_update_declares_another_input_rate_and_no_voice_when_unset() -> None:
    session = json.loads(session_update(OPTIONS, RealtimeSettings(input_rate_hz=16_000)))["session"]
    # the official type allows 24000 only; servers such as vLLM-Omni take 16 kHz
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 16_000}
    assert "voice" not in session["audio"]["output"]


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_a_later_session_update_names_its_voice_only_when_it_changes(beta: bool) -> None:
    settings = RealtimeSettings(voice="marin", beta=beta)
    same = official(session_update(OPTIONS, settings, "proxy_update_1", "marin"), beta=beta)
    assert same["event_id"] == "proxy_update_1"
    assert "marin" not in json.dumps(same) and same["session"]["instructions"] == "Answer in one sentence."
    changed = official(session_update(OPTIONS, settings, "proxy_update_2", "cedar"), beta=beta)
    assert "marin" in json.dumps(changed)


@pytest.mark.parametrize("turns", ["server", "proxy"])
def test_beta_session_update_is_flat_with_pcm16(turns: str) -> None:
    settings = RealtimeSettings(beta=True, voice="alloy", turn_detection=turns)  # type: ignore[arg-type]
    session = official(session_update(OPTIONS, settings), beta=True)["session"]
    assert session["input_audio_format"] == session["output_audio_format"] == "pcm16"
    assert session["modalities"] == ["text", "audio"]
    assert (session["instructions"], session["voice"]) == ("Answer in one sentence.", "alloy")
    assert (session["turn_detection"] is None) == (turns == "proxy")
    assert "audio" not in session and "type" not in session


@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_audio_turn_and_response_events_are_the_official_shapes(beta: bool) -> None:
    append = official(append_audio(PCM), beta=beta)
    assert base64.b64decode(append["audio"]) == PCM
    assert official(commit_audio(), beta=beta) == {"type": "input_audio_buffer.commit"}
    assert official(clear_audio(), beta=beta) == {"type": "input_audio_buffer.clear"}
    assert official(create_response(), beta=beta) == {"type": "response.create"}
    assert official(cancel_response("resp_1"), beta=beta) == {"type": "response.cancel",
                                                              "response_id": "resp_1"}
    assert official(cancel_response(None), beta=beta) == {"type": "response.cancel"}
    assert official(truncate_item("item_7", 1234), beta=beta) == {
        "type": "conversation.item.truncate", "item_id": "item_7", "content_index": 0, "audio_end_ms": 1234}
    assert json.loads(truncate_item("item_7", -5))["audio_end_ms"] == 0


def test_the_proxys_own_dialect_takes_every_event_the_client_sends() -> None:
    """Each protocol once, both halves: what this client writes, the server half reads."""
    d = dialect()
    d.send(Ready("sess", "2.6"))
    [configure] = d.receive(session_update(OPTIONS, RealtimeSettings(turn_detection="proxy")))
    assert configure == Configure({"assistantPrompt": "Answer in one sentence."})
    sound = tone(440, 0.1, 24_000)  # 100 ms: silence would be nothing to answer
    assert d.receive(append_audio(sound)) == [AudioIn(sound, 24_000, 4800)]
    assert d.receive(commit_audio())[-1] == CommitInput()
    # the committed turn's reply is on its way: its response is created at once
    [created] = d.receive(create_response())
    assert isinstance(created, DialectFrames)
    assert [json.loads(f)["type"] for f in created.frames] == ["response.created"]
    frames = [*d.send(ReplyStarted()), *d.send(ReplyAudio(bytes(4800), 24_000))]
    [item_id] = {part.item_id for f in frames
                 if isinstance(part := parse_server_event(f, beta=False), ReplyPart) and part.item_id}
    assert d.receive(cancel_response(None)) == [StopReply("client")]
    [answer] = d.receive(truncate_item(item_id, 100))
    assert isinstance(answer, DialectFrames)
    assert json.loads(answer.frames[0])["type"] == "conversation.item.truncated"
    assert d.receive(clear_audio())[0] == ClearInput()


# -- server events ------------------------------------------------------------------------------

@pytest.mark.parametrize("beta", [False, True], ids=["ga", "beta"])
def test_a_reply_written_by_the_proxys_dialect_reads_back_as_the_same_events(beta: bool) -> None:
    d = dialect(beta=beta)
    audio = ReplyAudio(PCM, 24_000)
    frames: list[str | bytes] = []
    for event in (Ready("sess", "2.6"), ReplyStarted(), ReplyText("Hello"), audio, ReplyEnded("complete")):
        frames += d.send(event)
    messages = [parse_server_event(frame, beta=beta) for frame in frames]
    [created] = [m for m in messages if isinstance(m, SessionInfo)]
    # the beta session names no model (its type lists OpenAI's own model names only)
    model = None if beta else "gpt-realtime"
    assert created == SessionInfo(True, model, created.session_id) and created.session_id
    parts = [m for m in messages if isinstance(m, ReplyPart)]
    assert [p.event for p in parts] == [ReplyStarted(), ReplyText("Hello"), audio]
    response_id = parts[0].response_id
    assert response_id and all(p.response_id == response_id for p in parts)
    assert parts[1].item_id and parts[1].item_id == parts[2].item_id
    [done] = [m for m in messages if isinstance(m, ResponseDone)]
    assert done == ResponseDone(response_id, "completed", None)
    assert done.ending() == ReplyEnded("complete")
    assert all(m.known for m in messages if isinstance(m, Ignored)), messages


@pytest.mark.parametrize(("stopped", "status", "reason"), [
    (ReplyEnded("stopped", stopped_by="client"), "cancelled", "client_cancelled"),
    (ReplyEnded("stopped", stopped_by="voice"), "cancelled", "turn_detected"),
    (ReplyEnded("interrupted"), "failed", "upstream_interrupted"),
])
def test_a_cut_reply_reads_back_with_its_status_and_reason(stopped: ReplyEnded, status: str,
                                                            reason: str) -> None:
    d = dialect()
    frames = [*d.send(Ready("sess", "2.6")), *d.send(ReplyStarted()), *d.send(stopped)]
    [done] = [m for f in frames if isinstance(m := parse_server_event(f, beta=False), ResponseDone)]
    assert (done.status, done.reason) == (status, reason)
    # the session's own view of an end the proxy did not ask for
    expected = ReplyEnded("stopped", stopped_by="voice") if reason == "turn_detected" else ReplyEnded(
        "interrupted")
    assert done.ending() == expected


def test_openai_shaped_events_with_extra_fields_read_as_their_meaning() -> None:
    audio = base64.b64encode(PCM).decode()
    assert parse_server_event(json.dumps({
        "type": "response.output_audio.delta", "event_id": "e1", "response_id": "r1", "item_id": "i1",
        "output_index": 0, "content_index": 0, "delta": audio, "sample_rate_hz": 16_000,
        "metadata": {"epoch": 3}}), beta=False) == ReplyPart(ReplyAudio(PCM, 16_000), "r1", "i1")
    assert parse_server_event(json.dumps({
        "type": "response.output_audio.delta", "delta": audio, "sample_rate_hz": 1}),
        beta=False) == ReplyPart(ReplyAudio(PCM, 24_000))  # a rate out of range is not believed
    assert parse_server_event(json.dumps({
        "type": "response.output_text.delta", "delta": "hi", "logprobs": []}),
        beta=False) == ReplyPart(ReplyText("hi"))
    assert parse_server_event('{"type":"response.created","response_id":"r9","response":{}}',
                              beta=False) == ReplyPart(ReplyStarted(), "r9")
    assert parse_server_event(json.dumps({
        "type": "input_audio_buffer.speech_started", "audio_start_ms": 1200, "item_id": "u1",
        "extra": True}), beta=False) == SpeechActivity(True, 1200, "u1")
    assert parse_server_event('{"type":"input_audio_buffer.speech_stopped","audio_end_ms":"x"}',
                              beta=False) == SpeechActivity(False, None, None)
    done = parse_server_event(json.dumps({"type": "response.done", "response": {
        "id": "r1", "status": "failed", "status_details": {"type": "failed", "error": {
            "type": "server_error", "code": "engine_error"}}}}), beta=False)
    assert done == ResponseDone("r1", "failed", "engine_error")
    assert done.ending() == ReplyEnded("interrupted")  # type: ignore[union-attr]
    assert parse_server_event('{"type":"session.updated","session":{"model":"gpt-realtime","id":"s1"}}',
                              beta=True) == SessionInfo(False, "gpt-realtime", "s1")


def test_unknown_events_and_the_other_spelling_are_read_past() -> None:
    speak = '{"type":"response.speak","x":1}'  # vLLM-Omni's own
    assert parse_server_event(speak, beta=False) == Ignored("response.speak", False)
    assert parse_server_event('{"type":"rate_limits.updated","rate_limits":[]}', beta=False) == Ignored(
        "rate_limits.updated", True)
    # a server that sends both spellings must not have its audio played twice
    beta_audio = '{"type":"response.audio.delta","delta":""}'
    assert parse_server_event(beta_audio, beta=False) == Ignored("response.audio.delta", True)
    ga_audio = '{"type":"response.output_audio.delta","delta":""}'
    assert parse_server_event(ga_audio, beta=True) == Ignored("response.output_audio.delta", True)


@pytest.mark.parametrize("frame", [
    "not json", b"\xff\xfe", "[1, 2]", '{"event": "x"}', '{"type": 3}',
    '{"type":"response.output_audio.delta"}', '{"type":"response.output_audio.delta","delta":"!!"}',
    '{"type":"response.output_audio_transcript.delta","delta":null}',
])
def test_what_cannot_be_read_is_a_protocol_error(frame: str | bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        parse_server_event(frame, beta=False)


# -- errors -------------------------------------------------------------------------------------

def error(code: str | None, kind: str = "invalid_request_error") -> ServerError:
    message = parse_server_event(json.dumps({"type": "error", "event_id": "e", "error": {
        "type": kind, "code": code, "message": "no", "param": None, "event_id": None,
        "extra": 1}}), beta=False)
    assert isinstance(message, ServerError)
    return message


@pytest.mark.parametrize("code", ["resource_exhausted", "session_limit_reached", "rate_limit_exceeded"])
def test_busy_codes_are_upstream_busy(code: str) -> None:
    failure = error_for(error(code))
    assert isinstance(failure, UpstreamBusy) and failure.close_code == 1013 and code in failure.message


@pytest.mark.parametrize("code", ["response_cancel_not_active", "input_audio_buffer_commit_empty",
                                  "conversation_already_has_active_response", "invalid_value", None])
def test_a_refused_request_lets_the_conversation_go_on(code: str | None) -> None:
    assert error_for(error(code)) is None


def test_a_server_failure_or_an_ended_session_ends_the_conversation() -> None:
    for failure in (error_for(error("upstream_unavailable", "server_error")),
                    error_for(error("session_expired"))):
        assert type(failure) is UpstreamError and failure.close_code == 1011
    assert parse_server_event('{"type":"error"}', beta=False) == ServerError("server_error", None,
                                                                             "(no message)")


# -- handshake and settings ---------------------------------------------------------------------

@pytest.mark.parametrize(("url", "model", "expected"), [
    ("http://127.0.0.1:8000", "m", "ws://127.0.0.1:8000/v1/realtime?model=m"),
    ("https://api.example/", None, "wss://api.example/v1/realtime"),
    ("https://api.example/v1", "gpt-realtime", "wss://api.example/v1/realtime?model=gpt-realtime"),
    ("ws://h:1/v1/realtime?duplex=1", "m", "ws://h:1/v1/realtime?duplex=1&model=m"),
    ("wss://h/custom/path?model=own", "m", "wss://h/custom/path?model=own"),
    ("WS://h:2", "a b", "ws://h:2/v1/realtime?model=a+b"),
])
def test_url_forms_become_one_websocket_url(url: str, model: str | None, expected: str) -> None:
    assert websocket_url(url, model) == expected


@pytest.mark.parametrize("url", ["ftp://h", "http://", "h:8000", ""])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="Realtime upstream"):
        websocket_url(url, None)


def test_headers_carry_the_key_and_the_beta_flag() -> None:
    assert handshake_headers(RealtimeSettings()) == {}
    assert handshake_headers(RealtimeSettings(api_key="sk-1", beta=True)) == {
        "Authorization": "Bearer sk-1", "OpenAI-Beta": "realtime=v1"}


def test_settings_hide_the_key_and_name_a_bad_field() -> None:
    settings = RealtimeSettings(api_key="sk-secret")
    assert "sk-secret" not in repr(settings)
    for bad in ({"api_key": "two words"}, {"api_key": ""}, {"model": "x" * 129}, {"beta": 1},
                {"input_rate_hz": 24_000.0}, {"input_rate_hz": 96_000}, {"turn_detection": "client"},
                {"voice": " "}, {"connect_timeout_s": 0}, {"close_timeout_s": float("inf")}):
        field = next(iter(bad))
        with pytest.raises(ValueError, match=f"invalid {field}=") as info:
            RealtimeSettings(**bad)  # type: ignore[arg-type]
        assert "sk-secret" not in str(info.value) and "two words" not in str(info.value)


def test_frames_the_dialect_answers_itself_are_passed_as_they_are() -> None:
    d = dialect()
    d.send(Ready("sess", "2.6"))
    frames = d.receive(client("input_audio_buffer.clear"))
    assert isinstance(frames[-1], DialectFrames)
    [cleared] = frames[-1].frames
    assert parse_server_event(cleared, beta=False) == Ignored("input_audio_buffer.cleared", True)
