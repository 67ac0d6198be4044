"""The Realtime adapter's pure parts: the reply tracker (what each response event means to the
session, and what a stop sends the server, with the heard-audio estimate), the send queue (order,
priority, joined appends, the bound), the proxy's turn detector and the later session updates'
answers. Time is passed in."""

from __future__ import annotations

import ast
import base64
import json
import pathlib

import pytest

import asgi_audio_proxy.upstreams.realtime as package
from asgi_audio_proxy.events import ReplyAudio, ReplyEnded, ReplyStarted, ReplyText
from asgi_audio_proxy.reply_state import ReplyPhase
from asgi_audio_proxy.upstreams.realtime import (
    Playout,
    ReplyPart,
    ReplyTracker,
    ResponseDone,
    SendQueue,
    ServerError,
    SessionInfo,
    SessionUpdates,
    TurnDetector,
    commit_audio,
    create_response,
)
from asgi_audio_proxy.vad import BargeInConfig, EnergyDetector
from tests.signals import silence, tone

PURE = ["settings.py", "handshake.py", "wire.py", "replies.py", "sendqueue.py", "turns.py", "updates.py"]
#: 100 ms of reply audio at 24 kHz
PIECE = ReplyAudio(bytes(4800), 24_000)


def test_the_pure_parts_import_no_io_library() -> None:
    root = pathlib.Path(package.__file__).parent
    for module in PURE:
        tree = ast.parse((root / module).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.level == 0}
        assert not imported & {"asyncio", "httpx", "websockets", "time", "socket"}, module


def part(event: ReplyStarted | ReplyText | ReplyAudio, response_id: str | None = "r1",
         item_id: str | None = "i1") -> ReplyPart:
    return ReplyPart(event, response_id, item_id)


def messages(texts: tuple[str, ...]) -> list[dict[str, object]]:
    return [json.loads(text) for text in texts]


# -- replies ------------------------------------------------------------------------------------

def test_a_response_becomes_started_text_audio_and_ended() -> None:
    replies = ReplyTracker()
    out = [e for m in (part(ReplyStarted(), item_id=None), part(ReplyText("Hi")), part(PIECE),
                       ResponseDone("r1", "completed")) for e in replies.route(m, 0.0)]
    assert out == [ReplyStarted(), ReplyText("Hi"), PIECE, ReplyEnded("complete")]
    assert replies.state is ReplyPhase.IDLE and not replies.is_busy


@pytest.mark.parametrize(("done", "ending"), [
    (ResponseDone("r1", "cancelled", "turn_detected"), ReplyEnded("stopped", stopped_by="voice")),
    (ResponseDone("r1", "cancelled", "client_cancelled"), ReplyEnded("interrupted")),
    (ResponseDone("r1", "incomplete", "max_output_tokens"), ReplyEnded("interrupted")),
    (ResponseDone("r1", "failed", None), ReplyEnded("interrupted")),
])
def test_an_end_the_proxy_did_not_ask_for_says_why(done: ResponseDone, ending: ReplyEnded) -> None:
    replies = ReplyTracker()
    replies.route(part(ReplyStarted()), 0.0)
    assert replies.route(done, 1.0) == [ending]


def test_a_server_that_skips_response_created_still_starts_the_reply() -> None:
    replies = ReplyTracker()
    assert replies.route(part(ReplyText("Hi"), None, None), 0.0) == [ReplyStarted(), ReplyText("Hi")]
    # a second response.created with no done in between ends the first
    assert replies.route(part(ReplyStarted(), "r2"), 1.0) == [ReplyEnded("complete"), ReplyStarted()]
    assert replies.route(ResponseDone("old", "completed"), 2.0) == []  # not the one in progress
    assert replies.route(ResponseDone("r2", "completed"), 2.0) == [ReplyEnded("complete")]
    assert replies.route(ResponseDone("r2", "completed"), 3.0) == []  # nothing in progress


def test_a_stop_cancels_and_truncates_at_what_was_heard_then_drops_the_rest() -> None:
    replies = ReplyTracker()
    replies.route(part(ReplyStarted()), 10.0)
    for _ in range(20):  # 2 s of audio arriving at once, at 10.0: faster than real time
        replies.route(part(PIECE), 10.0)
    cut = replies.cut(10.75)  # 750 ms of it played
    assert cut.was_playing
    assert messages(cut.messages) == [
        {"type": "response.cancel", "response_id": "r1"},
        {"type": "conversation.item.truncate", "item_id": "i1", "content_index": 0, "audio_end_ms": 750}]
    assert replies.state is ReplyPhase.CUT and replies.is_busy
    # what is left of it is dropped, and its end is not the session's to hear again
    assert replies.route(part(ReplyText("more")), 10.8) == []
    assert replies.route(part(PIECE), 10.8) == []
    assert replies.route(ResponseDone("r1", "cancelled", "client_cancelled"), 10.9) == []
    assert replies.dropped == 2 and not replies.is_busy
    # a late piece of the cut response, after its end, is still not played
    assert replies.route(part(PIECE), 11.0) == []
    assert replies.cut(11.0).messages == ()  # nothing more to cancel or truncate
    # the next response plays
    assert replies.route(part(ReplyStarted(), "r2", None), 12.0) == [ReplyStarted()]
    assert replies.route(part(PIECE, "r2", "i2"), 12.0) == [PIECE]


def test_heard_audio_follows_a_real_time_player_gaps_and_all() -> None:
    playout = Playout("i1")
    assert playout.heard_ms(5.0) == 0.0
    playout.add(100.0, 1.0)  # plays 1.0-1.1
    playout.add(100.0, 1.0)  # queued behind it: 1.1-1.2
    assert playout.heard_ms(1.15) == pytest.approx(150.0)
    assert playout.heard_ms(9.0) == 200.0  # never more than emitted
    playout.add(100.0, 2.0)  # arrives after a gap: 2.0-2.1, the gap is not counted
    assert playout.heard_ms(2.05) == pytest.approx(250.0)
    assert playout.heard_ms(0.0) == 0.0


def test_a_stop_after_the_response_ended_truncates_what_is_still_in_the_clients_buffer() -> None:
    replies = ReplyTracker()
    replies.route(part(ReplyStarted()), 0.0)
    for _ in range(10):  # 1 s of audio at once
        replies.route(part(PIECE), 0.0)
    replies.route(ResponseDone("r1", "completed"), 0.1)
    cut = replies.cut(0.4)
    assert not cut.was_playing  # nothing to cancel: the session cuts its queued audio itself
    assert messages(cut.messages) == [{"type": "conversation.item.truncate", "item_id": "i1",
                                       "content_index": 0, "audio_end_ms": 400}]
    assert replies.cut(0.5).messages == ()  # once
    played_out = ReplyTracker()
    played_out.route(part(ReplyStarted()), 0.0)
    played_out.route(part(PIECE), 0.0)
    played_out.route(ResponseDone("r1", "completed"), 0.0)
    assert played_out.cut(5.0).messages == ()  # all of it was heard: nothing to say


def test_a_stop_before_any_audio_cancels_only() -> None:
    replies = ReplyTracker()
    replies.route(part(ReplyStarted(), "r1", None), 0.0)
    assert messages(replies.cut(0.2).messages) == [{"type": "response.cancel", "response_id": "r1"}]
    assert not ReplyTracker().cut(0.0).was_playing


# -- send queue ---------------------------------------------------------------------------------

def appended(text: str) -> bytes:
    event = json.loads(text)
    assert event["type"] == "input_audio_buffer.append"
    return base64.b64decode(event["audio"])


def test_audio_is_joined_into_appends_and_events_keep_their_place() -> None:
    queue = SendQueue(max_audio_bytes=10_000, max_append_bytes=300)
    for piece in (b"a" * 100, b"b" * 100, b"c" * 100, b"d" * 100):
        queue.put_audio(piece)
    queue.put(commit_audio())
    queue.put_audio(b"e" * 50)
    queue.put_audio(b"")  # nothing: no empty append
    first = queue.pop()
    assert first is not None and first.audio_bytes == 300
    assert appended(first.text) == b"a" * 100 + b"b" * 100 + b"c" * 100
    queue.put_urgent('{"type":"response.cancel"}')  # ahead of the queued audio
    out = [queue.pop() for _ in range(4)]
    assert [o.text if o and not o.audio_bytes else o and appended(o.text) for o in out] == [
        '{"type":"response.cancel"}', b"d" * 100, commit_audio(), b"e" * 50]
    assert queue.pop() is None and not queue and queue.audio_bytes == 0


def test_the_bound_gives_back_pressure_and_a_clear_drops_only_the_uncommitted_audio() -> None:
    queue = SendQueue(max_audio_bytes=250, max_append_bytes=1000)
    queue.put_audio(b"a" * 100)
    queue.put(commit_audio())  # the audio before it is that turn's: a clear keeps it
    queue.put_audio(b"b" * 100)
    assert queue.has_room
    queue.put_audio(b"c" * 100)
    assert not queue.has_room and queue.audio_bytes == 300
    assert queue.clear_audio() == 200
    assert queue.has_room and queue.audio_bytes == 100
    queue.put(create_response())
    queue.put_audio(b"d" * 10)
    assert queue.drain_audio() == 110 and queue.audio_bytes == 0
    assert [o.text for o in iter(queue.pop, None)] == [commit_audio(), create_response()]
    with pytest.raises(ValueError):
        SendQueue(0, 1)


# -- turns --------------------------------------------------------------------------------------

def test_the_proxy_ends_a_turn_after_speech_and_silence_only() -> None:
    turns = TurnDetector(BargeInConfig(policy="off"), 24_000, EnergyDetector())
    assert not turns.heard(silence(1.0, 24_000))  # silence alone is no turn
    speech = tone(300, 0.6, 24_000)
    assert not any(turns.heard(speech[i:i + 960]) for i in range(0, len(speech), 960))
    quiet = silence(0.8, 24_000)
    ended = [turns.heard(quiet[i:i + 960]) for i in range(0, len(quiet), 960)]
    assert ended[-1] and 0.5 <= ended.index(True) * 0.02 <= 0.6  # min_silence_ms after the speech
    assert turns.has_turn and turns.take_turn() and not turns.take_turn()
    for pcm in (speech, silence(0.8, 24_000)):  # the client committed this one itself
        turns.heard(pcm)
    turns.forget()
    assert not turns.has_turn


def test_the_replys_echo_is_not_a_turn() -> None:
    turns = TurnDetector(BargeInConfig(), 16_000, EnergyDetector())
    turns.heard(silence(2.0))  # the noise floor
    echo = tone(300, 0.6, 16_000, amplitude=0.05)
    turns.replied(ReplyStarted())
    turns.replied(ReplyAudio(tone(300, 0.6, 16_000, amplitude=0.3), 16_000))  # 15 dB above its echo
    turns.heard(echo)
    turns.replied(ReplyEnded("complete"))
    assert not turns.heard(silence(1.0))


def test_later_session_updates_are_answered_in_order_and_errors_by_the_id_they_name() -> None:
    updates = SessionUpdates()
    first, second, third = updates.sent(), updates.sent(), updates.sent()
    assert updates.answered_by(SessionInfo(True, None, None)) is None  # created: no update's answer
    assert updates.answered_by(ServerError("invalid_request_error", "x", "m", event_id=second)) == second
    unrelated = ServerError("invalid_request_error", "response_cancel_not_active", "m", param=None)
    assert updates.answered_by(unrelated) is None
    assert updates.answered_by(SessionInfo(False, None, None)) == first
    updates.forget(third)  # given up on: nothing answers it any more
    assert updates.answered_by(SessionInfo(False, None, None)) is None
    fourth = updates.sent()
    about_the_session = ServerError("invalid_request_error", None, "m", param="session.voice")
    assert updates.answered_by(about_the_session) == fourth
