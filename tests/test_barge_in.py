"""Voice barge-in end to end: real speech over a reply cuts it; its own echo does not.

A client plays the reply it receives back into its microphone (the echo a phone on speaker
makes) while it streams at real-time pace; then, on cue, it speaks an ``espeak-ng`` utterance
over the reply. Through the proxy (``barge_in="voice"``) and the simulator: the reply is cut
(``turn_end`` ``stopped``, no audio of it after), the client is told ``speech_started`` near the
utterance's onset, and the simulated model hears the interruption whole (its next reply says
how much sound it heard). With echo alone the reply plays to its end.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    ErrorMessage,
    ProxyMessage,
    SpeechStartedMessage,
    TextMessage,
    TurnEndMessage,
)
from asgi_audio_proxy.simulator.vad import voiced_seconds
from tests.clients import FRAME_BYTES, ProxyClient, at_real_time
from tests.conftest import running_proxy, running_simulator
from tests.signals import silence, tone
from tests.timing import within
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

pytestmark = pytest.mark.skipif(espeak_missing_reason() is not None,
                                reason=espeak_missing_reason() or "")

FRAME_S = FRAME_BYTES / 32_000
#: what the first turn says: long enough that its played-back reply lasts a while
FIRST_TURN = tone(440, 2.0) + silence(1.4)


@dataclass
class Call:
    """What one client saw; times are seconds of microphone audio sent (the client's clock)."""

    events: list[tuple[float, ProxyMessage]] = field(default_factory=list)
    audio_after_cut: int = 0
    first_audio_at: float | None = None
    speech_from: float | None = None


async def talk_over_reply(url: str, speech: np.ndarray | None, echo_db: float) -> Call:
    """First turn, then echo the reply back (``echo_db`` below it) and maybe speak over it."""
    call = Call()
    played = bytearray()  # reply audio received, not yet echoed back
    cut = asyncio.Event()
    second_reply = asyncio.Event()
    async with ProxyClient(url) as client:

        async def microphone() -> None:
            start = asyncio.get_running_loop().time()
            sent = 0
            script = bytearray(FIRST_TURN)
            gain = 10 ** (echo_db / 20)
            while not second_reply.is_set() and sent < 40 * 32_000:
                frame = np.frombuffer(bytes(script[:FRAME_BYTES]).ljust(FRAME_BYTES, b"\0"), "<i2")
                del script[:FRAME_BYTES]
                echo = np.frombuffer(bytes(played[:FRAME_BYTES]).ljust(FRAME_BYTES, b"\0"), "<i2")
                del played[:FRAME_BYTES]
                mixed = frame.astype(np.float64) + gain * echo.astype(np.float64)
                if (speech is not None and call.first_audio_at is not None
                        and call.speech_from is None and sent / 32_000 >= call.first_audio_at + 0.4):
                    call.speech_from = sent / 32_000  # speak now, over the reply
                    script[:] = to_pcm(speech) + silence(1.6)
                await client.conn.send(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())
                sent += FRAME_BYTES
                await at_real_time(start, sent / 32_000)

        async def speaker() -> None:
            texts = 0
            said: list[str] = []
            next_reply = False
            while True:
                _, message = await client.next_frame(30)
                now = asyncio.get_running_loop().time()
                if isinstance(message, AudioMessage):
                    played.extend(message.pcm)
                    if call.first_audio_at is None:
                        call.first_audio_at = now - start_time
                    if cut.is_set() and not next_reply:  # the next reply starts with its text
                        call.audio_after_cut += len(message.pcm)
                    continue
                call.events.append((now - start_time, message))
                if message == TurnEndMessage("stopped"):
                    cut.set()
                if isinstance(message, TextMessage):
                    next_reply = next_reply or cut.is_set()
                    said.append(message.text)
                    if "Turn 2" in "".join(said):
                        texts = 2
                if (isinstance(message, TurnEndMessage) and texts == 2) or isinstance(message, ErrorMessage):
                    second_reply.set()
                    return
                if isinstance(message, TurnEndMessage) and speech is None:
                    second_reply.set()  # the echo-only call: the reply played to its end
                    return

        start_time = asyncio.get_running_loop().time()
        async with asyncio.timeout(within(30)):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(microphone())
                tg.create_task(speaker())
    return call


def kinds(call: Call) -> list[str]:
    return [type(message).__name__ + (f":{message.reason}" if isinstance(message, TurnEndMessage) else "")
            for _, message in call.events]


@pytest.fixture(scope="module")
def utterance(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    bank = SpeechBank(Path(tmp_path_factory.mktemp("speech")))
    return bank.utterance("Wait, stop please, I want to ask something else.").samples


async def test_speech_over_the_reply_cuts_it_and_the_model_hears_all_of_it(utterance: np.ndarray) -> None:
    async with running_simulator(chunk_delay_s=0.45) as up, \
            running_proxy("uvicorn", up.url, chunk_duration=0.2, barge_in="voice") as (_, url):
        call = await talk_over_reply(url, 0.5 * utterance / np.abs(utterance).max(), echo_db=-20)
    seen = kinds(call)
    assert "TurnEndMessage:stopped" in seen, seen
    assert call.audio_after_cut == 0  # nothing of the cut reply played after the cut
    started = [e for _, e in call.events if isinstance(e, SpeechStartedMessage)]
    assert call.speech_from is not None and started
    # the detector's onset is on the client's audio clock, near where speech began (the first
    # word is short and quiet under the reply's echo; the cut-latency figures are benchmarks')
    assert any(0 <= e.audio_start_ms / 1000 - call.speech_from < 0.3 for e in started), (
        started, call.speech_from)
    second = up.sim.recorder.replies[1]
    assert second.voiced_s >= 0.9 * voiced_seconds(utterance), (
        f"{second}; the utterance has {voiced_seconds(utterance)} s of sound; /stop sent "
        f"{up.sim.recorder.stops} time(s); acks: {runs(ack.reason for ack in up.sim.recorder.acks)}; "
        f"client: {[(round(t, 2), kind) for (t, _), kind in zip(call.events, seen, strict=True)]}")


def runs(items: Iterable[object]) -> str:
    """``done x18, skip x9, done x12``: a sequence told by its runs, for a failure's message."""
    return ", ".join(f"{item} x{len(list(group))}" for item, group in itertools.groupby(items))


async def test_the_reply_own_echo_does_not_cut_it() -> None:
    async with running_simulator(chunk_delay_s=0.45) as up, \
            running_proxy("uvicorn", up.url, chunk_duration=0.2, barge_in="voice") as (_, url):
        call = await talk_over_reply(url, None, echo_db=-10)
    assert kinds(call)[-1] == "TurnEndMessage:complete", kinds(call)
    assert up.sim.recorder.stops == 0

