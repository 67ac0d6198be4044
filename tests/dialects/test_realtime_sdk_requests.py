"""End to end with the official ``openai`` SDK: what voice-agent frameworks do besides speaking.

The bot speaks first (with a system item before it), a spoken turn under server VAD, the
instructions changed after the first audio, a reply asked for after silence, and manual turns
with the request's metadata: never an ``error``, every event valid for the SDK's types."""

from __future__ import annotations

from typing import Any

from tests.signals import silence, tone

from .test_realtime_sdk import RATE_HZ, UTTERANCE, Conversation, _b64, realtime_proxy, sdk_connection


def bracketed(events: list[dict[str, Any]]) -> None:
    """Every commit follows a speech_started and a speech_stopped for its item."""
    for i, event in enumerate(events):
        if event["type"] == "input_audio_buffer.committed":
            before = [e["type"] for e in events[:i] if e.get("item_id") == event["item_id"]]
            assert before == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"]


async def request(talk: Conversation, **response: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    await talk.conn.response.create(response=response)
    created = await talk.until("response.created")
    return created["response"], (await talk.until("response.done"))["response"]


async def test_bot_speaks_first_then_turns_then_updates_then_silence_never_an_error() -> None:
    async with realtime_proxy() as base_url, sdk_connection(base_url, beta=False) as talk:
        assert (await talk.next())["type"] == "session.created"
        await talk.conn.session.update(session={"type": "realtime", "instructions": "Answer briefly."})
        await talk.until("session.updated")
        await talk.conn.conversation.item.create(item={
            "id": "sys_1", "type": "message", "role": "system",
            "content": [{"type": "input_text", "text": "You are a helpful assistant."}]})
        assert (await talk.until("conversation.item.added"))["item"]["id"] == "sys_1"
        assert (await talk.until("conversation.item.done"))["item"]["id"] == "sys_1"

        created, done = await request(talk, metadata={"client_event_id": "first"})
        assert created["metadata"] == done["metadata"] == {"client_event_id": "first"}
        assert (done["status"], done["status_details"]["error"]["code"]) == ("failed", "no_user_audio")

        done, audio, transcript = await talk.turn()
        assert done["response"]["status"] == "completed" and transcript and audio

        await talk.conn.session.update(session={"type": "realtime", "instructions": "Be verbose."})
        updated = await talk.until("session.updated")
        assert updated["session"]["instructions"] == "Answer briefly."  # what the model still has

        done, audio, transcript = await talk.turn()
        assert done["response"]["status"] == "completed" and transcript and audio

        quiet = silence(1.0, RATE_HZ)
        await talk.speak(quiet)
        created, done = await request(talk, metadata={"client_event_id": "after-silence"})
        assert done["metadata"] == {"client_event_id": "after-silence"}
        assert done["status_details"]["error"]["code"] == "input_audio_silent"
    assert "error" not in [event["type"] for event in talk.events]
    bracketed(talk.events)


async def test_manual_turns_no_speech_events_one_commit_each_metadata_echoed() -> None:
    async with realtime_proxy() as base_url, sdk_connection(base_url, beta=False) as talk:
        assert (await talk.next())["type"] == "session.created"
        await talk.conn.session.update(session={"type": "realtime",
                                                "audio": {"input": {"turn_detection": None}}})
        await talk.until("session.updated")
        for turn in range(2):
            await talk.speak(tone(440, 0.8, RATE_HZ))
            await talk.conn.input_audio_buffer.commit()
            await talk.until("input_audio_buffer.committed")
            created, done = await request(talk, metadata={"client_event_id": f"turn-{turn}"})
            assert done["status"] == "completed", done
            assert created["metadata"] == done["metadata"] == {"client_event_id": f"turn-{turn}"}
            await talk.conn.input_audio_buffer.append(audio=_b64(UTTERANCE[:4800]))
    kinds = [event["type"] for event in talk.events]
    assert "error" not in kinds
    assert not [kind for kind in kinds if kind.startswith("input_audio_buffer.speech")]
    assert kinds.count("input_audio_buffer.committed") == 2
