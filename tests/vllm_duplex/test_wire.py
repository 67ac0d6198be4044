"""The vllm-duplex kind's pure parts: the URL, the client events, the parse of server events, the
playback bookkeeping (fed by hand, time passed in), the settings and the packaged voice."""

from __future__ import annotations

import base64
import json

import pytest

from asgi_audio_proxy.audio.wav import wav_to_pcm16
from asgi_audio_proxy.config import ConversationOptions, UpstreamOptions
from asgi_audio_proxy.events import ReplyAudio, ReplyEnded, ReplyStarted
from asgi_audio_proxy.upstreams.realtime.wire import (
    ReplyPart,
    ResponseDone,
    append_audio,
    cancel_response,
    clear_audio,
    commit_audio,
)
from asgi_audio_proxy.upstreams.registry import KIND_NAMES, named_kind
from asgi_audio_proxy.upstreams.vllm_duplex import (
    Decision,
    DuplexPlayback,
    DuplexSession,
    DuplexSettings,
    SessionEnded,
    barge_in,
    default_reference_voice,
    duplex_url,
    event_ack,
    heartbeat,
    instructions_update,
    parse_duplex_event,
    playback_ack,
    session_close,
    session_resume,
    session_update,
)

MODEL = "openbmb/MiniCPM-o-4_5"
SECOND = bytes(48_000)  # 1 s of 24 kHz PCM16


@pytest.mark.parametrize(("given", "dialled"), [
    ("ws://gpu:8099/v1/realtime", "ws://gpu:8099/v1/realtime?duplex=1&model=m&autostart=0"),
    ("http://gpu:8099", "ws://gpu:8099/v1/realtime?duplex=1&model=m&autostart=0"),
    ("https://gpu/v1/duplex/", "wss://gpu/v1/duplex?duplex=1&model=m&autostart=0"),
    ("ws://gpu:8099/v1/realtime?duplex=true&model=x&autostart=1",
     "ws://gpu:8099/v1/realtime?duplex=true&model=x&autostart=0"),
])
def test_the_url_is_the_duplex_route_with_autostart_off(given: str, dialled: str) -> None:
    assert duplex_url(given, "m") == dialled


def test_a_url_of_another_scheme_is_refused_naming_the_kind() -> None:
    with pytest.raises(ValueError, match="vllm-duplex"):
        duplex_url("ftp://gpu/v1/realtime")


def test_the_session_update_carries_the_voice_and_hands_turns_to_the_model() -> None:
    voice = default_reference_voice()
    options = UpstreamOptions(assistant_prompt="Be brief.")
    update = json.loads(session_update(options, DuplexSettings()))
    session = update["session"]
    assert update["type"] == "session.update" and session["model"] == MODEL
    assert session["turn_detection"] is None and session["instructions"] == "Be brief."
    assert (session["input_audio_format"], session["output_audio_format"]) == ("pcm16", "pcm16")
    assert session["audio"] == {"input": {"format": {"type": "audio/pcm", "rate": 16_000}},
                                "output": {"format": {"type": "audio/pcm", "rate": 24_000}}}
    assert session["playback_commit_policy"] == "ack_only" and session["overlap_policy"] == "listen_only"
    prefix, data = session["ref_audio"].split(",", 1)
    assert prefix == "data:audio/wav;base64" and base64.b64decode(data) == voice


#: each client event's fields as the server's API reference lists them (``realtime_duplex_api.md``:
#: the event catalogue, "Session fields" of the compatibility tiers, and the message examples)
DOCUMENTED: dict[str, set[str]] = {
    "session.update": {"type", "event_id", "session"},
    "session.heartbeat": {"type"},
    "session.event_ack": {"type", "server_event_seq"},
    "session.close": {"type"},
    "session.resume": {"type", "session_id", "resume_token", "last_received_server_event_seq"},
    "input_audio_buffer.append": {"type", "event_id", "audio", "input_audio_format", "format",
                                  "sample_rate_hz", "duration_ms", "audio_end_ms", "is_speech",
                                  "video_frames"},
    "input_audio_buffer.commit": {"type", "event_id", "final", "response_create", "is_speech"},
    "input_audio_buffer.clear": {"type"},
    "response.cancel": {"type", "response_id"},
    "barge_in": {"type"},
    "playback.ack": {"type", "response_id", "item_id", "played_ms", "committed_ms", "truncate"},
}
DOCUMENTED_SESSION = {
    "model", "modalities", "output_modalities", "instructions", "voice", "input_audio_format",
    "output_audio_format", "audio", "turn_detection", "input_audio_transcription",
    "input_audio_noise_reduction", "tools", "tool_choice", "temperature", "max_response_output_tokens",
    "speed", "tracing", "ref_audio", "overlap_policy", "playback_commit_policy", "extra_body",
    "idle_timeout_s"}


def undocumented(event: dict[str, object]) -> set[str]:
    """The fields of a client event the server's API reference does not list (its type, if unknown)."""
    kind = str(event["type"])
    if kind not in DOCUMENTED:
        return {kind}
    extra = set(event) - DOCUMENTED[kind]
    session = event.get("session")
    if isinstance(session, dict):
        extra |= set(session) - DOCUMENTED_SESSION
        audio = session.get("audio", {})
        extra |= {f"audio.{side}.{key}" for side, part in audio.items() for key in part if key != "format"}
    return extra


def test_every_client_event_carries_only_fields_the_server_documents() -> None:
    options = UpstreamOptions(assistant_prompt="Be brief.")
    events = [session_update(options, DuplexSettings()), instructions_update(options), barge_in(),
              playback_ack("resp_1", 1200, truncate=True), playback_ack(None, 0, truncate=False),
              heartbeat(), event_ack(48), session_resume("duplex-1", "rt_1", 40), session_close(),
              append_audio(SECOND[:3_200]), commit_audio(), clear_audio(), cancel_response("resp_1"),
              cancel_response(None)]
    for text in events:
        event = json.loads(text)
        assert undocumented(event) == set(), event


def test_a_conversations_own_reference_voice_wins_over_the_kinds() -> None:
    settings = DuplexSettings(ref_audio=default_reference_voice())
    mapped = settings.map_options(ConversationOptions(reference_audio=bytes(16_000), reference_rate_hz=8_000))
    wav = base64.b64decode(mapped["ref_audio"].split(",", 1)[1])
    assert (wav_to_pcm16(wav).sample_rate_hz, len(wav_to_pcm16(wav).pcm)) == (8_000, 16_000)
    assert "instructions" not in mapped
    assert settings.map_options(ConversationOptions(instructions="Hi"))["instructions"] == "Hi"


def test_the_packaged_voice_is_a_second_of_16_khz_sound() -> None:
    audio = wav_to_pcm16(default_reference_voice())
    assert (audio.sample_rate_hz, len(audio.pcm)) == (16_000, 32_000)
    assert max(abs(int.from_bytes(audio.pcm[i:i + 2], "little", signed=True))
               for i in range(0, 32_000, 2)) > 1_000


def test_server_events_are_read_with_their_sequence() -> None:
    created = json.dumps({"type": "session.created", "server_event_seq": 1, "resume_token": "rt_1",
                          "session": {"id": "duplex-1", "model": MODEL,
                                      "capabilities": {"supports_session_resume": True}}})
    assert parse_duplex_event(created) == (1, DuplexSession(True, "duplex-1", MODEL, "rt_1", True))
    listen = json.dumps({"type": "response.listen", "server_event_seq": 7, "response": {}})
    assert parse_duplex_event(listen) == (7, Decision(False, None))
    expired = json.dumps({"type": "session.expired", "reason": "idle_ttl_expired"})
    assert parse_duplex_event(expired) == (None, SessionEnded("session.expired", "idle_ttl_expired"))
    delta = json.dumps({"type": "response.output_audio.delta", "server_event_seq": 9, "response_id": "r",
                        "item_id": "i", "delta": base64.b64encode(SECOND).decode(), "sample_rate_hz": 24_000})
    seq, part = parse_duplex_event(delta)
    assert seq == 9 and part == ReplyPart(ReplyAudio(SECOND, 24_000), "r", "i")


def test_a_stop_cancels_and_acknowledges_what_was_heard_and_a_voice_stop_barges_in() -> None:
    for by_voice, first in ((False, {"type": "response.cancel", "response_id": "r1"}),
                            (True, {"type": "barge_in"})):
        playback = DuplexPlayback()
        assert playback.route(ReplyPart(ReplyStarted(), "r1"), 10.0) == [ReplyStarted()]
        playback.route(ReplyPart(ReplyAudio(SECOND, 24_000), "r1", "i1"), 10.0)
        was_playing, messages = playback.cut(10.25, by_voice=by_voice)
        assert was_playing and [json.loads(m) for m in messages] == [first, {
            "type": "playback.ack", "played_ms": 250, "committed_ms": 250, "truncate": True,
            "response_id": "r1"}]
        assert playback.route(ResponseDone("r1", "cancelled", "client_cancelled"), 10.5) == []
        assert playback.acks_due(12.0) == [] and playback.settle(12.0) == []  # acknowledged already


def test_a_reply_is_acknowledged_as_it_plays_and_in_full_once_played_out() -> None:
    playback = DuplexPlayback()
    playback.route(ReplyPart(ReplyStarted(), "r1"), 0.0)
    playback.route(ReplyPart(ReplyAudio(SECOND, 24_000), "r1", "i1"), 0.0)
    playback.route(ReplyPart(ReplyAudio(SECOND, 24_000), "r1", "i1"), 0.5)
    assert playback.acks_due(0.9) == []
    [progress] = playback.acks_due(1.2)
    assert json.loads(progress)["played_ms"] == 1200 and not json.loads(progress)["truncate"]
    assert playback.route(ResponseDone("r1", "completed"), 1.3) == [ReplyEnded("complete")]
    assert playback.acks_due(1.5) == []
    [final] = playback.acks_due(2.0)
    assert json.loads(final)["played_ms"] == 2000 and playback.acks_due(3.0) == []


def test_the_servers_own_barge_in_ends_the_reply_as_a_voice_stop() -> None:
    playback = DuplexPlayback()
    playback.route(ReplyPart(ReplyStarted(), "r1"), 0.0)
    assert playback.route(ResponseDone("r1", "cancelled", "barge_in"), 0.1) == [
        ReplyEnded("stopped", stopped_by="voice")]


def test_the_kind_is_named_and_takes_slots_and_a_model() -> None:
    assert "vllm-duplex" in KIND_NAMES
    kind = named_kind("vllm-duplex", slots=2, model="m-2")
    assert (kind.name, kind.slots, kind.probe_while_leased) == ("vllm-duplex", 2, True)
    assert isinstance(kind.settings, DuplexSettings) and kind.settings.model == "m-2"
    assert named_kind("vllm-duplex").slots == 4
    with pytest.raises(ValueError, match="API key"):
        named_kind("vllm-duplex", api_key="k")


@pytest.mark.parametrize(("field", "value"), [("model", "two words"), ("ref_audio", b"not a wav"),
                                              ("heartbeat_interval_s", 0), ("resume_timeout_s", -1.0),
                                              ("overlap_policy", "interrupt")])
def test_a_bad_setting_is_refused_naming_it(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"invalid {field}="):
        DuplexSettings(**{field: value})  # type: ignore[arg-type]
