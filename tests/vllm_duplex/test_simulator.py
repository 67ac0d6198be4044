"""The vLLM-Omni duplex simulator against the wire its docs and code describe
(``realtime_duplex_api.md``, ``serving.py``, ``session_attachment.py``), through a real socket."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.http_clients import http_client
from tests.signals import dominant_frequency_hz, silence, tone
from tests.timing import within

from .peer import OPENING, duplex_peer, running_duplex_simulator

#: a turn: a second of speech, then the quiet second that ends it
TURN = tone(440, 1.0) + silence(1.0)
def resume(session_id: str, token: str, last_seq: int) -> dict[str, object]:
    return {"type": "session.resume", "session_id": session_id, "incarnation": 0, "resume_token": token,
            "last_received_server_event_seq": last_seq}


RESPONSE_ORDER = ["response.created", "conversation.item.added", "conversation.item.created",
                  "response.output_item.added", "response.content_part.added", "response.speak",
                  "response.output_audio.delta", "response.output_audio_transcript.delta",
                  "response.output_audio.done", "response.output_audio_transcript.done",
                  "response.content_part.done", "response.output_item.done", "conversation.item.done",
                  "response.done", "rate_limits.updated"]


async def test_session_update_opens_a_session_the_server_names() -> None:
    async with running_duplex_simulator() as up, duplex_peer(up.url()) as peer:
        await peer.update(session_id="mine")
        created, updated = await peer.next(), await peer.next()
    assert (created["type"], updated["type"]) == ("session.created", "session.updated")
    session = created["session"]
    assert session["id"].startswith("duplex-") and session["id"] != "mine"
    assert created["resume_token"] and created["attachment_generation"] == 1
    assert session["capabilities"]["implementation_level"] == "model_native_duplex"
    assert session["capabilities"]["supports_session_resume"] is True
    assert session["capabilities"]["chunk_period_ms"] == 1000
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 16000}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert (created["server_event_seq"], updated["server_event_seq"]) == (1, 2)
    assert up.sim.recorder.opened == [session["id"]]


#: ``session.created``'s session in the API reference's example, every key of it
EXAMPLE_SESSION_KEYS = {
    "object", "type", "id", "model", "state", "turn_state", "epoch", "turn_id", "active_request_id",
    "active_response_id", "active_response_turn_id", "modalities", "output_modalities", "instructions",
    "voice", "response_format", "input_audio_format", "output_audio_format", "audio", "temperature",
    "max_tokens", "speed", "idle_timeout_s", "overlap_policy", "overlap_short_ack_ms",
    "overlap_barge_in_ms", "overlap_silence_rms", "playback_commit_policy", "turn_detection",
    "input_audio_transcription", "tracing", "playback", "capabilities"}


async def test_a_session_update_is_answered_with_the_session_in_effect() -> None:
    async with running_duplex_simulator() as up, duplex_peer(up.url()) as peer:
        await peer.update(instructions="Be brief.", temperature=None, idle_timeout_s=None,
                          playback_commit_policy=None, overlap_policy=None)
        created = await peer.next()
        await peer.until("session.updated")
        await peer.send({"type": "session.update", "session": {"instructions": "Be briefer.",
                                                               "extra_body": {"force_listen_count": 1}}})
        updated = (await peer.until("session.updated"))["session"]
        for change, code in [({"ref_audio": OPENING["session"]["ref_audio"]}, "ref_audio_update_unsupported"),
                             ({"model": "another"}, "model_update_unsupported")]:
            await peer.send({"type": "session.update", "event_id": "evt_9", "session": change})
            refused = await peer.next()
            assert (refused["error"]["code"], refused["error"]["event_id"]) == (code, "evt_9")
        await peer.send({"type": "session.update", "session": {
            "turn_detection": {"type": "server_vad", "threshold": 0.5}}})
        vad = (await peer.until("session.updated"))["session"]
    defaults = created["session"]
    assert set(defaults) >= EXAMPLE_SESSION_KEYS  # and the server's extensions (extra_body...)
    # what the client left unset is the server's default (``DuplexSessionConfig``)
    assert (defaults["idle_timeout_s"], defaults["playback_commit_policy"], defaults["overlap_policy"]) == (
        300.0, "commit_all_on_done", "listen_only")
    assert (defaults["overlap_short_ack_ms"], defaults["overlap_barge_in_ms"]) == (700, 1200)
    assert defaults["temperature"] is None and defaults["max_tokens"] is None
    # a later update changes what it names and keeps the rest; extra_body is merged
    assert updated["instructions"] == "Be briefer." and updated["model"] == defaults["model"]
    assert updated["extra_body"] == {**OPENING["session"]["extra_body"], "force_listen_count": 1}
    assert "ref_audio" not in updated and updated["id"] == defaults["id"]
    assert vad["overlap_policy"] == "barge_in_on_speech"  # server VAD implies it


async def test_speech_over_a_reply_under_listen_only_is_an_overlap_decision_and_the_reply_goes_on() -> None:
    async with running_duplex_simulator(reply_units=4) as up, duplex_peer(up.url()) as peer:
        await peer.update()
        await peer.until("session.updated")
        await peer.append(TURN)
        await peer.until("response.speak")
        await peer.append(tone(440, 0.3) + silence(0.7))  # a remark: dropped
        first = await peer.until("overlap.decision")
        await peer.append(tone(440, 1.0))  # a turn: kept for after the reply
        second = await peer.until("overlap.decision")
        await peer.append(silence(1.0))
        await peer.until("response.done")
        await peer.append(silence(1.0))  # quiet: the model answers what it kept
        await peer.until("response.speak")
        [hosted] = up.sim.table.sessions.values()
    assert (first["action"], first["reason"], first["policy"]) == ("drop", "short_overlap_ack", "listen_only")
    assert (second["action"], second["reason"]) == ("listen", "long_overlap_speech")
    assert second["metadata"]["overlap_ms"] >= 700 and second["metadata"]["buffer_audio"] is True
    assert [e["response"]["status"] for e in peer.of("response.done")] == ["completed"]
    said = "".join(hosted.conversation.replies[-1].parts)
    assert said.startswith("Turn 2: heard 1.0"), said  # the turn it kept, the remark left out


@pytest.mark.parametrize("first", [{"type": "session.update", "session": {"model": "m"}},
                                   {"type": "input_audio_buffer.append", "audio": ""}],
                         ids=["update-without-voice", "default-session"])
async def test_a_session_without_a_reference_voice_is_refused(first: dict[str, object]) -> None:
    async with running_duplex_simulator() as up, duplex_peer(up.url()) as peer:
        await peer.send(first)
        refused = await peer.next()
        with pytest.raises(ConnectionClosed):
            await peer.next()
    assert refused["error"]["code"] == "ref_audio_required"
    assert refused["error"]["type"] == "invalid_request_error"
    assert up.sim.recorder.opened == []


async def test_a_model_in_the_query_opens_a_default_session_at_once_which_has_no_voice() -> None:
    async with running_duplex_simulator() as up, duplex_peer(up.url("duplex=1&model=m")) as peer:
        refused = await peer.next()  # before the client said anything
    assert refused["error"]["code"] == "ref_audio_required"


async def test_a_turn_is_answered_one_unit_of_output_per_unit_of_input() -> None:
    async with running_duplex_simulator(reply_units=2) as up, duplex_peer(up.url()) as peer:
        await peer.update()
        await peer.until("session.updated")
        await peer.append(TURN)
        await peer.until("response.output_audio_transcript.delta")
        await peer.append(silence(0.9))  # not a whole unit: the model says nothing more
        await peer.send({"type": "session.heartbeat"})
        assert (await peer.next())["type"] == "session.heartbeat_ack"
        await peer.append(silence(0.1))
        await peer.until("rate_limits.updated")
    kinds = [e["type"] for e in peer.events if e["type"] not in ("response.listen", "session.heartbeat_ack")]
    reply = kinds[kinds.index("response.created"):]
    assert reply == RESPONSE_ORDER[:8] + RESPONSE_ORDER[6:]  # two units of audio, paired 1:1
    seqs = [e["server_event_seq"] for e in peer.events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert peer.of("response.listen")  # the first unit, while the user spoke
    delta = peer.of("response.output_audio.delta")[0]
    assert delta["sample_rate_hz"] == 24000 and delta["format"] == "pcm16"
    assert delta["metadata"]["audio_duration_ms"] == 1000 and delta["metadata"]["end_of_turn"] is False
    audio = peer.audio()
    assert len(audio) == 2 * 48_000 and dominant_frequency_hz(audio, 24_000) == pytest.approx(440, abs=2)
    text = "".join(e["delta"] for e in peer.of("response.output_audio_transcript.delta"))
    assert text == "Turn 1: heard 1.0 s of speech."
    [done] = peer.of("response.done")
    assert done["response"]["status"] == "completed"
    assert peer.of("rate_limits.updated")[0]["rate_limits"] == []
    assert len(up.sim.recorder.audio[peer.events[0]["session"]["id"]]) == len(TURN) + 2 * 16_000


@pytest.mark.parametrize(("message", "reason"), [({"type": "response.cancel"}, "client_cancelled"),
                                                  ({"type": "barge_in"}, "barge_in")])
async def test_an_interruption_cancels_the_reply_and_playback_is_acknowledged(
        message: dict[str, object], reason: str) -> None:
    async with running_duplex_simulator(reply_units=4) as up, duplex_peer(up.url()) as peer:
        await peer.update()
        await peer.append(TURN)
        created = await peer.until("response.created")
        await peer.until("response.output_audio.delta")
        await peer.send(message)
        done = await peer.until("response.done")
        await peer.send({"type": "playback.ack", "response_id": created["response_id"], "played_ms": 640,
                         "committed_ms": 640, "truncate": True})
        acknowledged = await peer.until("playback.acknowledged")
        await peer.append(silence(2.0))  # the cut reply says nothing more
        await peer.send({"type": "no.such.event", "event_id": "e1"})
        unknown = await peer.until("error")
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": reason}
    assert len(peer.of("response.output_audio.delta")) == 1
    assert acknowledged["event"]["played_ms"] == 640 and acknowledged["event"]["truncate"] is True
    assert unknown["error"] == {"type": "invalid_request_error", "code": "unknown_event",
                                "message": "Unknown duplex event type: no.such.event", "event_id": "e1"}
    sid = peer.events[0]["session"]["id"]
    assert up.sim.recorder.interruptions == [(sid, message["type"])]
    assert [a["played_ms"] for a in up.sim.recorder.acks] == [640]


async def test_a_commit_closes_the_input_and_the_model_says_all_it_owes() -> None:
    async with running_duplex_simulator(reply_units=3) as up, duplex_peer(up.url()) as peer:
        await peer.update()
        await peer.append(tone(440, 1.2))
        await peer.send({"type": "input_audio_buffer.commit", "final": True})
        await peer.until("response.done")
    assert peer.of("input_audio_buffer.committed")
    assert len(peer.of("response.output_audio.delta")) == 3
    assert up.sim.recorder.types()[-1] == "input_audio_buffer.commit"


async def test_more_than_max_sessions_are_refused_until_one_closes() -> None:
    async with running_duplex_simulator(max_sessions=2) as up, \
            duplex_peer(up.url()) as a, duplex_peer(up.url("duplex=1&model=x&autostart=0")) as b:
        for peer in (a, b):
            await peer.update()
            await peer.until("session.updated")
        async with duplex_peer(up.url()) as c:
            await c.update()
            refused = await c.next()
        await a.send({"type": "session.close"})
        closed = await a.until("session.closed")
        with pytest.raises(ConnectionClosed) as gone:
            await a.next()
        async with duplex_peer(up.url()) as d:
            await d.update()
            assert (await d.next())["type"] == "session.created"
    assert refused["error"] == {"type": "rate_limit_error", "code": "resource_exhausted",
                                "message": "duplex_session_capacity_exhausted: limit=2"}
    assert closed["reason"] == "client_close" and gone.value.rcvd is not None  # its default
    assert gone.value.rcvd.code == 1000
    assert up.sim.recorder.refused == 1 and up.sim.recorder.most_live == 2


async def test_a_dropped_socket_resumes_with_a_new_token_and_the_journal_replayed() -> None:
    async with running_duplex_simulator(reply_units=1) as up:
        up.sim.table.drop_at = "response.created"  # the reply goes to the journal, not the socket
        async with duplex_peer(up.url()) as peer:
            await peer.update()
            created = await peer.next()
            await peer.until("session.updated")
            await peer.append(TURN)
            with pytest.raises(ConnectionClosed):
                while True:
                    await peer.next()
        sid, token = created["session"]["id"], created["resume_token"]
        last = max(e["server_event_seq"] for e in peer.events)
        assert not peer.of("response.created") and up.sim.recorder.live == 1  # held in its grace
        async with duplex_peer(up.url("duplex=1&autostart=0")) as again:
            await again.send(resume(sid, token, last))
            resumed = await again.next()
            await again.until("rate_limits.updated")
        async with duplex_peer(up.url("autostart=0")) as stale:
            await stale.send(resume(sid, token, last))
            stale_answer = await stale.next()
    assert resumed["type"] == "session.resumed" and resumed["resume_token"] != token
    assert resumed["attachment_generation"] == 2
    replayed = again.events[1:]
    assert replayed[0]["type"] == "response.created" and replayed[0]["server_event_seq"] == last + 1
    assert len(again.of("response.output_audio.delta")) == 1
    assert stale_answer["error"]["code"] == "invalid_resume_token"
    assert up.sim.recorder.resumed == [sid] and up.sim.recorder.drops == 1


async def test_a_session_past_its_grace_or_behind_the_acknowledged_journal_cannot_resume() -> None:
    async with running_duplex_simulator(disconnect_grace_s=2.0) as up:
        async with duplex_peer(up.url()) as peer:
            await peer.update()
            created = await peer.next()
            await peer.send({"type": "session.event_ack", "server_event_seq": 2})
            await peer.send({"type": "session.heartbeat"})
            await peer.until("session.heartbeat_ack")
        sid, token = created["session"]["id"], created["resume_token"]
        async with duplex_peer(up.url("autostart=0")) as behind:
            await behind.send(resume(sid, token, 0))  # events 1 and 2 are gone
            gap = await behind.next()
        await up.sim.recorder.wait_for(lambda r: r.expired == [sid], timeout=within(5))
        async with duplex_peer(up.url("autostart=0")) as late:
            await late.send(resume(sid, token, 3))
            expired = await late.next()
    assert gap == {**gap, "type": "session.resync_required", "reason": "journal_gap"}
    assert expired["error"]["code"] == "session_resume_expired" and sid in expired["error"]["message"]
    assert up.sim.recorder.live == 0


async def test_an_expired_session_is_told_and_closed() -> None:
    async with running_duplex_simulator() as up, duplex_peer(up.url()) as peer:
        await peer.update()
        await peer.until("session.updated")
        await up.sim.expire()
        expired = await peer.next()
        with pytest.raises(ConnectionClosed):
            await peer.next()
    assert expired["type"] == "session.expired" and expired["reason"] == "idle_ttl_expired"
    assert up.sim.recorder.live == 0


async def test_the_http_routes_and_no_turn_based_route() -> None:
    async with running_duplex_simulator() as up:
        async with http_client(base_url=f"http://127.0.0.1:{up.port}") as http:
            health, models = await http.get("/health"), await http.get("/v1/models")
        with pytest.raises(InvalidStatus):
            async with duplex_peer(up.url("duplex=0")):
                pass
        async with duplex_peer(f"ws://127.0.0.1:{up.port}/v1/duplex") as alias:
            await alias.update()
            assert (await alias.next())["type"] == "session.created"
    assert health.status_code == 200
    assert models.json()["data"][0]["id"] == "openbmb/MiniCPM-o-4_5"

