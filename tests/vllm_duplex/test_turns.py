"""The vllm-duplex kind's turns are the model's: the client's speech events come from what the
model and the server decide, never from the proxy's own detector.

Pure: :class:`ModelTurns` fed by hand (a turn's start, once; its end when the model speaks,
once per response; nothing for a turn without client audio; speech over a reply, as the
server's ``overlap.decision`` says, starts the next turn). End to end against the simulator:
the ``openai`` SDK on ``/v1/realtime`` speaks two turns (espeak-ng words, which the proxy's
detector would hear at their onset) and gets, before each response, exactly one
``speech_started``, ``speech_stopped`` and ``committed``, in that order and for one item, each
turn running from the end of the last to where the model spoke; a native client under voice
barge-in gets ``speech_started`` and ``speech_stopped`` once each before each reply.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asgi_audio_proxy.audio.resample import Resampler
from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    SpeechStartedMessage,
    SpeechStoppedMessage,
    TextMessage,
)
from asgi_audio_proxy.events import SpeechStarted, SpeechStopped
from asgi_audio_proxy.upstreams.vllm_duplex import ModelTurns, Overlap, parse_duplex_event
from tests.clients import ProxyClient, at_real_time
from tests.dialects.test_realtime_sdk import sdk_connection
from tests.signals import silence, tone
from tests.timing import within
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

from .support import duplex_proxy

SECOND = 32_000  # bytes of 16 kHz PCM16
needs_speech = pytest.mark.skipif(espeak_missing_reason() is not None, reason=espeak_missing_reason() or "")


# -- pure -----------------------------------------------------------------------------------------

def test_a_turn_ends_when_the_model_speaks_and_the_next_runs_on_from_there() -> None:
    turns = ModelTurns(16_000)
    turns.heard(SECOND)
    assert turns.spoke("r1") == [SpeechStarted(0), SpeechStopped(1000)]
    assert turns.spoke("r1") == []  # its response.speak after its response.created
    turns.heard(SECOND // 2)
    assert turns.spoke("r2") == [SpeechStarted(1000), SpeechStopped(1500)]


def test_the_server_hearing_speech_starts_the_turn_once_and_its_stop_marks_the_end() -> None:
    turns = ModelTurns(16_000)
    turns.heard(SECOND)
    assert turns.speech_started() == [SpeechStarted(1000)]
    turns.heard(SECOND)
    assert turns.speech_started() == []
    turns.speech_stopped()
    turns.heard(SECOND)
    assert turns.spoke("r1") == [SpeechStopped(2000)]


def test_no_client_audio_no_turn_and_a_cleared_turn_is_gone() -> None:
    turns = ModelTurns(16_000)
    assert turns.spoke("r1") == []  # the model spoke first
    turns.heard(SECOND)
    turns.forget()
    assert turns.spoke("r2") == []
    turns.heard(SECOND)
    turns.interrupted(1500.0)  # the client's voice cut a reply from there
    assert turns.spoke("r3") == [SpeechStarted(1500), SpeechStopped(2000)]


def test_the_server_events_that_speak_of_a_turn() -> None:
    turns = ModelTurns(16_000)
    turns.heard(SECOND)

    def said(event: dict[str, object]) -> list[SpeechStarted | SpeechStopped]:
        return turns.route(parse_duplex_event(json.dumps(event))[1])

    assert said({"type": "response.listen", "session_id": "duplex-1", "epoch": 0}) == []
    assert said({"type": "input_audio_buffer.speech_started", "audio_start_ms": 900, "item_id": "i"}) == [
        SpeechStarted(1000)]  # on the client's clock: the server's counts its silence too
    turns.heard(SECOND)
    assert said({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 1900, "item_id": "i"}) == []
    turns.heard(SECOND)
    assert said({"type": "response.speak", "response_id": "r1"}) == [SpeechStopped(2000)]
    assert said({"type": "response.created", "response_id": "r1", "response": {"id": "r1"}}) == []
    turns.heard(SECOND)
    assert said({"type": "overlap.decision", "action": "drop", "reason": "short_overlap_ack"}) == []
    assert said({"type": "overlap.decision", "action": "barge_in", "reason": "overlap_speech"}) == [
        SpeechStarted(4000)]


@pytest.mark.parametrize(("action", "is_speech"), [("listen", True), ("barge_in", True), ("drop", False)])
def test_an_overlap_decision_is_speech_unless_dropped(action: str, is_speech: bool) -> None:
    seq, message = parse_duplex_event(json.dumps({
        "type": "overlap.decision", "server_event_seq": 7, "session_id": "duplex-1", "epoch": 0,
        "policy": "listen_only", "action": action, "reason": "long_overlap_speech"}))
    assert seq == 7 and message == Overlap(action, "long_overlap_speech")
    assert message.is_speech is is_speech


# -- end to end -----------------------------------------------------------------------------------

def _words(tmp_path: Path, text: str) -> bytes:
    """espeak-ng words at 24 kHz, peaking at half scale."""
    samples = SpeechBank(tmp_path).utterance(text).samples
    return Resampler(16_000, 24_000).feed(to_pcm(0.5 * samples / np.abs(samples).max()))


async def _speak(conn: Any, pcm: bytes) -> None:
    chunk = 4_800  # 100 ms at 24 kHz
    start = asyncio.get_running_loop().time()
    for i in range(0, len(pcm), chunk):
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i:i + chunk]).decode())
        await at_real_time(start, (i + chunk) / 48_000)


@needs_speech
async def test_the_openai_sdk_gets_each_turn_as_the_model_takes_it(tmp_path: Path) -> None:
    utterances = [_words(tmp_path, "What is the weather like today?"),
                  silence(0.5, 24_000) + _words(tmp_path, "And what about tomorrow?")]
    turns: list[list[dict[str, Any]]] = []
    async with duplex_proxy() as d, sdk_connection(f"ws://127.0.0.1:{d.port}/v1", beta=False) as talk:
        assert (await talk.next())["type"] == "session.created"
        for words in utterances:
            start = len(talk.events)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_speak(talk.conn, words + silence(2.5, 24_000)))
                async with asyncio.timeout(within(30)):
                    while (event := await talk.next(30))["type"] != "response.done":
                        assert event["type"] != "error", event
            assert event["response"]["status"] == "completed"
            turns.append(talk.events[start:])
    stops = []
    for events in turns:
        kinds = [e["type"] for e in events]
        heard = [e for e in events if e["type"].startswith("input_audio_buffer.")]
        assert [e["type"] for e in heard] == ["input_audio_buffer.speech_started",
                                              "input_audio_buffer.speech_stopped",
                                              "input_audio_buffer.committed"], kinds
        assert len({e["item_id"] for e in heard}) == 1
        assert kinds.index("input_audio_buffer.committed") < kinds.index("response.created")
        started, stopped, _ = heard
        assert started["audio_start_ms"] < stopped["audio_end_ms"]
        stops.append((started["audio_start_ms"], stopped["audio_end_ms"]))
    # the model's turns: the first from the start, the next from where the model spoke (the
    # proxy's detector would have said where the words began, 500 ms into the second turn)
    assert stops[0][0] == 0 and stops[1][0] == stops[0][1]
    assert stops[1][1] - stops[1][0] >= len(utterances[1]) / 48


async def test_a_native_client_under_voice_barge_in_gets_the_models_turns() -> None:
    async with duplex_proxy(barge_in="voice") as d, ProxyClient(d.url("/audio_proxy")) as client:
        turns = [await client.say(tone(440, 1.0) + silence(0.6)),
                 await client.say(tone(660, 1.0) + silence(0.6))]
    said = []
    for turn in turns:
        assert not any(isinstance(m, AudioMessage) for m in turn.messages)
        speech = [m for m in turn.messages if isinstance(m, SpeechStartedMessage | SpeechStoppedMessage)]
        assert [type(m) for m in speech] == [SpeechStartedMessage, SpeechStoppedMessage], turn.messages
        first_text = next(i for i, m in enumerate(turn.messages) if isinstance(m, TextMessage))
        assert turn.messages.index(speech[1]) < first_text  # before the reply
        assert isinstance(speech[0], SpeechStartedMessage) and isinstance(speech[1], SpeechStoppedMessage)
        said.append((speech[0].audio_start_ms, speech[1].audio_end_ms))
    assert said[0][0] == 0 < said[0][1] == said[1][0] < said[1][1]


async def test_speech_over_a_reply_starts_the_next_turn_when_the_server_says() -> None:
    rate = 24_000
    script = (tone(440, 1.0, rate) + silence(1.5, rate) + tone(660, 2.5, rate) + silence(3.0, rate))
    async with duplex_proxy(sim={"reply_units": 3}) as d, \
            sdk_connection(f"ws://127.0.0.1:{d.port}/v1", beta=False) as talk:
        assert (await talk.next())["type"] == "session.created"
        start = len(talk.events)
        async with asyncio.TaskGroup() as tg:
            speaking = tg.create_task(_speak(talk.conn, script))
            done = 0
            async with asyncio.timeout(within(30)):
                while done < 2:
                    event = await talk.next(30)
                    assert event["type"] != "error", event
                    done += event["type"] == "response.done"
            speaking.cancel()
    events = talk.events[start:]
    kinds = [e["type"] for e in events]
    first, second = [i for i, k in enumerate(kinds) if k == "response.created"]
    first_done = kinds.index("response.done")
    during = [e for e in events[first:first_done] if e["type"].startswith("input_audio_buffer.")]
    after = [e for e in events[first_done:second] if e["type"].startswith("input_audio_buffer.")]
    # the server kept the speech over the reply for the next turn (overlap.decision listen):
    # its start is told as the reply plays, its end and commit when the model speaks again
    assert [e["type"] for e in during] == ["input_audio_buffer.speech_started"], kinds
    assert [e["type"] for e in after] == ["input_audio_buffer.speech_stopped",
                                          "input_audio_buffer.committed"], kinds
    assert len({e["item_id"] for e in during + after}) == 1
    assert during[0]["audio_start_ms"] < after[0]["audio_end_ms"]
