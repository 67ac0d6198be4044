"""The Twilio dialect fed whole messages, as Twilio writes them; every frame it sends is held to
Twilio's rules (``twilio_peer.check_outbound``). Named after the parts of Twilio's "Media Streams -
WebSocket Messages" page they cover."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pytest

from asgi_audio_proxy.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.base import ClientDialect
from asgi_audio_proxy.dialects.twilio import (
    StreamState,
    TwilioDialect,
    twilio_dialect,
    twilio_dialect_factory,
)
from asgi_audio_proxy.errors import BadClientPayload, ClientError
from asgi_audio_proxy.events import (
    AudioIn,
    ClientEvent,
    ConfigApplied,
    Configure,
    DialectFrames,
    EndSession,
    ErrorEvent,
    Introduced,
    Queued,
    Ready,
    ReplyAudio,
    ReplyEnded,
    ReplyStarted,
    ReplyText,
    ServerEvent,
    SpeechStarted,
    SpeechStopped,
    StopReply,
)
from tests.dialects.twilio_peer import check_outbound, inbound_message, start_body
from tests.signals import tone

SID = "MZ00000000000000000000000000000001"


def _started(dialect: TwilioDialect | None = None, **parameters: str) -> TwilioDialect:
    dialect = dialect or TwilioDialect()
    assert dialect.receive(inbound_message("connected", None, 0, protocol="Call", version="1.0.0")) == []
    dialect.receive(inbound_message("start", SID, 1, start=start_body(SID, custom_parameters=parameters)))
    return dialect


def _media(ulaw: bytes, sid: str = SID, **extra: Any) -> str:
    return inbound_message("media", sid, 2, media={"track": "inbound", "chunk": "1", "timestamp": "0",
                                                   "payload": base64.b64encode(ulaw).decode(), **extra})


def _sent(dialect: TwilioDialect, events: Sequence[ServerEvent]) -> list[dict[str, Any]]:
    """Send each event; every frame is checked by Twilio's rules."""
    sid = dialect.call.stream_sid if dialect.call else None
    return [check_outbound(frame, sid) for event in events for frame in dialect.send(event)]


def test_the_dialect_meets_the_seam() -> None:
    dialect: ClientDialect = twilio_dialect({"type": "websocket", "path": "/twilio"}, ProxyConfig())
    assert (dialect.name, dialect.subprotocol, dialect.output_rate_hz) == ("twilio", None, 8000)
    assert dialect.playback_lead_ms is not None and 40 <= dialect.playback_lead_ms <= 100


# -- connected and start ----------------------------------------------------------------------

def test_start_opens_the_stream_and_names_the_call() -> None:
    dialect = _started()
    assert dialect.state is StreamState.STREAMING
    assert dialect.call is not None and dialect.call.stream_sid == SID
    assert dialect.call.call_sid.startswith("CA")


def test_custom_parameters_become_options_with_their_types_and_the_rest_stay_on_the_call() -> None:
    dialect = TwilioDialect()
    events = dialect.receive(inbound_message("start", SID, 1, start=start_body(SID, custom_parameters={
        "assistantPrompt": "Answer as a pharmacist.", "vadThreshold": "0.7", "useAudioPrompt": "2",
        "caller": "+15550100"})))
    assert events[1:] == [Configure({"assistantPrompt": "Answer as a pharmacist.", "vadThreshold": 0.7,
                                     "useAudioPrompt": 2}, acknowledge=False)]
    assert isinstance(events[0], Introduced) and events[0].parameters["caller"] == "+15550100"
    assert dialect.call is not None and dialect.call.custom_parameters["caller"] == "+15550100"


def test_a_start_without_option_parameters_configures_nothing() -> None:
    assert TwilioDialect().receive(inbound_message("start", SID, 1, start=start_body(SID))) == [
        Introduced({})]  # what the call said of itself, for the admit hook: nothing


def test_option_parameters_can_be_narrowed_by_the_operator() -> None:
    dialect = twilio_dialect_factory(option_parameters={"assistantPrompt"})({}, ProxyConfig())
    events = dialect.receive(inbound_message("start", SID, 1, start=start_body(SID, custom_parameters={
        "assistantPrompt": "Be brief.", "vadThreshold": "0.7"})))
    assert events[1:] == [Configure({"assistantPrompt": "Be brief."}, acknowledge=False)]
    assert events[0] == Introduced({"assistantPrompt": "Be brief.", "vadThreshold": "0.7"})


def test_a_numeric_option_that_is_not_a_number_is_refused() -> None:
    dialect = TwilioDialect()
    with pytest.raises(BadClientPayload, match="vadThreshold='high' is not a number"):
        dialect.receive(inbound_message("start", SID, 1, start=start_body(
            SID, custom_parameters={"vadThreshold": "high"})))


@pytest.mark.parametrize("media_format", [
    {"encoding": "audio/x-l16", "sampleRate": 8000, "channels": 1},
    {"encoding": "audio/x-mulaw", "sampleRate": 16000, "channels": 1},
    {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2}])
def test_start_with_another_media_format_is_refused_and_the_stream_stays_unstarted(
        media_format: dict[str, Any]) -> None:
    dialect = TwilioDialect()
    with pytest.raises(ClientError, match="not supported"):
        dialect.receive(inbound_message("start", SID, 1, start=start_body(SID, media_format=media_format)))
    assert dialect.state is StreamState.AWAITING_START and dialect.call is None


def test_media_format_numbers_may_be_strings() -> None:
    dialect = TwilioDialect()
    dialect.receive(inbound_message("start", SID, 1, start=start_body(SID, media_format={
        "encoding": "audio/x-mulaw", "sampleRate": "8000", "channels": "1"})))
    assert dialect.state is StreamState.STREAMING


# -- media ------------------------------------------------------------------------------------

@pytest.mark.parametrize("ms", [1, 20, 37, 500])
def test_media_of_any_size_becomes_8khz_pcm(ms: int) -> None:
    ulaw = pcm16_to_ulaw(tone(440, ms / 1000, 8_000))
    frame = _media(ulaw)
    assert _started().receive(frame) == [AudioIn(ulaw_to_pcm16(ulaw), 8000, len(frame))]


def test_empty_media_is_no_audio() -> None:
    assert _started().receive(_media(b"")) == []


def test_media_before_start_is_refused_and_the_stream_waits_for_start() -> None:
    dialect = TwilioDialect()
    with pytest.raises(ClientError, match="'media' message while the stream is awaiting_start"):
        dialect.receive(_media(b"\xff" * 160))
    assert dialect.state is StreamState.AWAITING_START
    _started(dialect)  # and the call can still start


def test_media_for_another_stream_is_refused_and_the_call_goes_on() -> None:
    dialect = _started()
    with pytest.raises(ClientError, match="for stream 'MZ-other'"):
        dialect.receive(_media(b"\xff" * 160, sid="MZ-other"))
    assert dialect.receive(_media(b"\xff" * 160))  # the next frame is taken


@pytest.mark.parametrize(("frame", "why"), [
    (b"\x00\x01", "binary frame"),
    ("{not json", "not JSON"),
    ("[1, 2]", 'string "event"'),
    ('{"event": "transcript"}', "unknown Twilio event 'transcript'"),
    (inbound_message("media", SID, 2), "needs an object 'media'"),
    (inbound_message("media", SID, 2, media={"payload": "%%%"}), "not base64"),
    (inbound_message("media", SID, 2, media={"payload": 12}), "string 'payload'"),
    (json.dumps({"event": "media", "media": {"payload": "/w=="}}), "non-empty string 'streamSid'"),
    (inbound_message("dtmf", SID, 3, dtmf={"track": "inbound_track"}), "non-empty string 'digit'"),
])
def test_malformed_messages_are_refused_with_a_clear_reason(frame: str | bytes, why: str) -> None:
    dialect = _started()
    with pytest.raises(BadClientPayload, match=why):
        dialect.receive(frame)
    assert dialect.state is StreamState.STREAMING


def test_outbound_track_audio_is_refused() -> None:
    with pytest.raises(ClientError, match="only the caller's"):
        _started().receive(_media(b"\xff", track="outbound"))


# -- dtmf -------------------------------------------------------------------------------------

def test_a_mapped_digit_stops_the_reply_and_others_are_counted() -> None:
    dialect = _started(TwilioDialect(stop_digits="*#"))
    press = [inbound_message("dtmf", SID, 3, dtmf={"track": "inbound_track", "digit": d})
             for d in "*5#"]
    assert [dialect.receive(p) for p in press] == [[StopReply("dtmf")], [], [StopReply("dtmf")]]
    assert dialect.other_digits == 1


def _press(dialect: TwilioDialect, digit: str = "*") -> list[ClientEvent]:
    return dialect.receive(inbound_message("dtmf", SID, 9, dtmf={"track": "inbound_track", "digit": digit}))


def test_the_key_clears_a_reply_sent_whole_that_twilio_still_plays() -> None:
    """After a stall the proxy sends late pieces at once: the reply has gone out whole, but
    Twilio holds seconds of it. The key clears what it holds, the marks coming back cleared."""
    dialect = _started(TwilioDialect(stop_digits="*"))
    messages = _sent(dialect, [ReplyStarted(), ReplyAudio(tone(440, 0.2, 8_000), 8000),
                               ReplyEnded("complete")])
    names = [m["mark"]["name"] for m in messages[1::2]]
    dialect.receive(inbound_message("mark", SID, 5, mark={"name": names[0]}))
    events = _press(dialect)
    assert events[0] == StopReply("dtmf")
    assert isinstance(events[1], DialectFrames)
    cleared = [check_outbound(frame, SID) for frame in events[1].frames]
    assert cleared == [{"event": "clear", "streamSid": SID}]
    for name in names[1:]:
        dialect.receive(inbound_message("mark", SID, 6, mark={"name": name}))
    assert (dialect.counts.heard_ms, dialect.counts.cleared_ms) == (40, 160)


def test_the_key_sends_no_clear_of_its_own_while_the_reply_goes_out_or_once_it_has_played() -> None:
    dialect = _started(TwilioDialect(stop_digits="*"))
    messages = _sent(dialect, [ReplyStarted(), ReplyAudio(tone(440, 0.08, 8_000), 8000)])
    assert _press(dialect) == [StopReply("dtmf")]  # the session cuts it, and that sends clear
    _sent(dialect, [ReplyEnded("complete")])
    for m in messages[1::2]:
        dialect.receive(inbound_message("mark", SID, 6, mark={"name": m["mark"]["name"]}))
    assert _press(dialect) == [StopReply("dtmf")]  # all of it played: nothing to clear


def test_by_default_no_digit_stops_a_reply() -> None:
    dialect = _started()
    assert dialect.receive(inbound_message("dtmf", SID, 3, dtmf={"digit": "*"})) == []


def test_stop_digits_are_checked_when_the_factory_is_made() -> None:
    with pytest.raises(ValueError, match="stop_digits"):
        twilio_dialect_factory(stop_digits="x")


# -- stop -------------------------------------------------------------------------------------

def test_stop_ends_the_session_and_nothing_is_taken_after_it() -> None:
    dialect = _started()
    assert dialect.receive(inbound_message("stop", SID, 9, stop={"callSid": "CA1"})) == [EndSession()]
    assert dialect.state is StreamState.STOPPED
    with pytest.raises(ClientError, match="while the stream is stopped"):
        dialect.receive(_media(b"\xff" * 160))


# -- to Twilio: media, mark, clear --------------------------------------------------------------

def test_nothing_goes_to_twilio_before_start() -> None:
    dialect = TwilioDialect()
    events: list[ServerEvent] = [Queued(1, 2.0), Ready("s", "v"), ReplyStarted(),
                                 ReplyAudio(tone(440, 0.1, 8_000), 8000), ReplyEnded("stopped", "voice")]
    assert [dialect.send(e) for e in events] == [[]] * len(events)
    assert dialect.counts.dropped_ms == 100


def test_events_twilio_has_no_message_for_send_nothing() -> None:
    dialect = _started()
    events: list[ServerEvent] = [Queued(1, 2.0), Ready("s", "v"), ConfigApplied(), ReplyText("hi"),
                                 SpeechStarted(10), SpeechStopped(900),
                                 ErrorEvent("upstream_error", "boom", 1011, fatal=True)]
    assert [dialect.send(e) for e in events] == [[]] * len(events)


@pytest.mark.parametrize("event_ms", [10, 20, 33, 40, 60, 100, 250])
def test_reply_audio_goes_out_in_20_to_60_ms_media_each_followed_by_a_named_mark(event_ms: int) -> None:
    dialect = _started()
    reply = tone(440, 1, 8_000)
    step = event_ms * 16
    events: list[ServerEvent] = [ReplyStarted()]
    events += [ReplyAudio(reply[i:i + step], 8000) for i in range(0, len(reply), step)]
    messages = _sent(dialect, [*events, ReplyEnded("complete")])
    assert [m["event"] for m in messages] == ["media", "mark"] * (len(messages) // 2)
    payloads = [base64.b64decode(m["media"]["payload"]) for m in messages[::2]]
    assert all(160 <= len(p) <= 480 for p in payloads)
    sent = b"".join(payloads)  # every sample, in order; the last piece padded with silence
    assert sent[: len(reply) // 2] == pcm16_to_ulaw(reply)
    assert set(sent[len(reply) // 2:]) <= {0xFF} and len(sent) - len(reply) // 2 < 160
    names = [m["mark"]["name"] for m in messages[1::2]]
    assert len(set(names)) == len(names)


def test_a_reply_ending_short_of_20_ms_is_padded_with_silence() -> None:
    dialect = _started()
    messages = _sent(dialect, [ReplyStarted(), ReplyAudio(tone(440, 0.05, 8_000), 8000),
                               ReplyEnded("complete")])
    payloads = [base64.b64decode(m["media"]["payload"]) for m in messages[::2]]
    assert [len(p) for p in payloads] == [400]
    messages = _sent(dialect, [ReplyStarted(), ReplyAudio(tone(440, 0.075, 8_000), 8000),
                               ReplyEnded("complete")])
    payloads = [base64.b64decode(m["media"]["payload"]) for m in messages[::2]]
    assert [len(p) for p in payloads] == [320, 280] or [len(p) for p in payloads] == [320, 160, 160]
    assert b"".join(payloads)[:600] == pcm16_to_ulaw(tone(440, 0.075, 8_000))


def test_a_sample_split_across_two_events_is_kept_whole() -> None:
    dialect = _started()
    pcm = tone(440, 0.04, 8_000)
    messages = _sent(dialect, [ReplyStarted(), ReplyAudio(pcm[:321], 8000), ReplyAudio(pcm[321:], 8000)])
    assert b"".join(base64.b64decode(m["media"]["payload"]) for m in messages[::2]) == pcm16_to_ulaw(pcm)


def test_echoed_marks_tell_how_much_of_the_reply_was_heard() -> None:
    dialect = _started()
    messages = _sent(dialect, [ReplyStarted(), ReplyAudio(tone(440, 0.2, 8_000), 8000)])
    names = [m["mark"]["name"] for m in messages[1::2]]
    assert dialect.playback.pending_ms == 200
    dialect.receive(inbound_message("mark", SID, 5, mark={"name": names[1]}))  # the first came with it
    assert dialect.playback.reply_heard_ms == 80 and dialect.playback.pending_ms == 120


def test_a_stopped_reply_clears_twilio_at_once_and_its_pending_marks_count_as_cleared() -> None:
    dialect = _started()
    pcm = tone(440, 0.21, 8_000)
    messages = _sent(dialect, [ReplyStarted(), ReplyAudio(pcm[:3200], 8000), ReplyAudio(pcm[3200:], 8000)])
    names = [m["mark"]["name"] for m in messages[1::2]]
    dialect.receive(inbound_message("mark", SID, 5, mark={"name": names[0]}))
    assert _sent(dialect, [ReplyEnded("stopped", "voice")]) == [{"event": "clear", "streamSid": SID}]
    for name in names[1:]:  # Twilio echoes what was pending when it cleared
        dialect.receive(inbound_message("mark", SID, 6, mark={"name": name}))
    counts = dialect.counts
    assert (counts.sent_ms, counts.heard_ms, counts.cleared_ms, counts.pending_ms) == (200, 40, 160, 0)
    assert counts.dropped_ms == 10  # the last 10 ms never filled a piece


def test_a_mark_never_sent_is_refused() -> None:
    with pytest.raises(ClientError, match="never sent"):
        _started().receive(inbound_message("mark", SID, 5, mark={"name": "r9.9"}))


def test_a_new_reply_after_a_stop_plays_from_its_start() -> None:
    dialect = _started()
    _sent(dialect, [ReplyStarted(), ReplyAudio(tone(440, 0.03, 8_000), 8000), ReplyEnded("stopped", "dtmf")])
    messages = _sent(dialect, [ReplyStarted(), ReplyAudio(tone(880, 0.04, 8_000), 8000)])
    assert base64.b64decode(messages[0]["media"]["payload"]) == pcm16_to_ulaw(tone(880, 0.04, 8_000))


def test_reply_audio_after_stop_is_counted_not_sent() -> None:
    dialect = _started()
    dialect.receive(inbound_message("stop", SID, 9, stop={}))
    assert dialect.send(ReplyAudio(tone(440, 0.06, 8_000), 8000)) == []
    assert dialect.send(ReplyEnded("stopped", "client")) == []
    assert dialect.counts.dropped_ms == 60


def test_reply_audio_at_another_rate_is_a_bug_said_loudly() -> None:
    with pytest.raises(ValueError, match="16000 Hz"):
        _started().send(ReplyAudio(b"\x00\x00" * 160, 16000))


def test_dialect_frames_pass_through() -> None:
    frames = ('{"event":"clear","streamSid":"' + SID + '"}',)
    assert _started().send(DialectFrames(frames)) == list(frames)
