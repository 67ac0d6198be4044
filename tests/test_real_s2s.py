"""The realtime kind against huggingface/speech-to-speech's own Realtime server (``tests/real_s2s``).

Every client dialect through ``asgi-audio-proxy serve --upstream-kind realtime`` in front of the
server's real ``serve`` (routing, sessions, pool, VAD/STT/LLM handlers) with stand-in models: its
STT hears ``<D> seconds of speech``, its LLM answers ``Turn N: you said <that>.``, its TTS is a
600 Hz tone. Its VAD needs speech, so the clients speak ``espeak-ng`` sentences.

Needs ``S2S_GIT_DIR`` (a speech-to-speech git dir) and ``espeak-ng``; skipped otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import pathlib
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

from asgi_audio_proxy.audio.g711 import ulaw_to_pcm16
from asgi_audio_proxy.dialects.native_client import TurnEndMessage
from tests.clients import ProxyClient, at_real_time
from tests.dialects.realtime_support import GA_EVENTS
from tests.dialects.twilio_peer import TwilioPeer
from tests.processes import stop_group
from tests.servers import free_port
from tests.signals import dominant_frequency_hz, silence
from tests.test_one_conversation import command
from tests.test_one_conversation import process as proxy_process
from tests.test_real_upstream import wait_until_serving
from tests.timing import within
from tests.vad.speech import RATE_HZ, SpeechBank, espeak_missing_reason, to_pcm

KIT = pathlib.Path(__file__).resolve().parent / "real_s2s" / "run_s2s.sh"
SERVING = r"running on http://127\.0\.0\.1:(\d+)"
SENTENCE = "Could you tell me the time please"
#: the kit's first start builds its venv (minutes); later ones import and warm up in seconds
KIT_START_S = 300
pytestmark = [
    pytest.mark.real_upstream,
    pytest.mark.timeout(KIT_START_S + 120),
    pytest.mark.skipif(not os.environ.get("S2S_GIT_DIR"),
                       reason="S2S_GIT_DIR is not set: no copy of speech-to-speech's code"),
    pytest.mark.skipif(espeak_missing_reason() is not None, reason=str(espeak_missing_reason())),
]


@pytest.fixture(scope="module")
def sentence(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The spoken sentence, 16 kHz float samples."""
    return SpeechBank(tmp_path_factory.mktemp("speech")).utterance(SENTENCE).samples


def spoken(samples: np.ndarray, rate_hz: int, pause_s: float = 1.5) -> bytes:
    """``samples`` at ``rate_hz`` as PCM16, then ``pause_s`` of silence so the VAD ends the turn."""
    at = np.arange(round(len(samples) * rate_hz / RATE_HZ)) * RATE_HZ / rate_hz
    return to_pcm(np.interp(at, np.arange(len(samples)), samples)) + silence(pause_s, rate_hz)


@contextlib.contextmanager
def kit(port: int, log: pathlib.Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """The server, its output in ``log``; stopped (its process group) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", str(KIT), "--port", str(port)], env={**os.environ, **env},
                                start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_group(proc)


@contextlib.asynccontextmanager
async def s2s_stack(log: pathlib.Path, **kit_env: str) -> AsyncIterator[str]:
    """The server and ``serve --upstream-kind realtime`` in front of it; yields the proxy's
    ``ws://127.0.0.1:PORT``."""
    upstream = free_port()
    with kit(upstream, log, **kit_env) as proc:
        try:  # a kit that exits (a wrong S2S_GIT_DIR, a failed install) fails at once, saying why
            await wait_until_serving(f"http://127.0.0.1:{upstream}/", KIT_START_S, proc)
        except AssertionError as exc:
            tail = await asyncio.to_thread(log.read_text, errors="replace")
            raise AssertionError(f"{exc}:\n{tail[-2000:]}") from None
        async with proxy_process(command(
                "serve", "--upstream-kind", "realtime", "--upstream",
                f"ws://127.0.0.1:{upstream}/v1/realtime", "--port", "0"), SERVING) as port:
            yield f"ws://127.0.0.1:{port}"


def heard(text: str, turn: int) -> bool:
    return re.fullmatch(rf"Turn {turn}: you said \d+\.\d seconds of speech\.", text.strip()) is not None


async def test_native_client_two_turns(sentence: np.ndarray, tmp_path: pathlib.Path) -> None:
    async with s2s_stack(tmp_path / "s2s.log") as base, ProxyClient(f"{base}/audio_proxy") as client:
        turns = [await client.say(spoken(sentence, RATE_HZ), timeout_s=40) for _ in range(2)]
    for n, turn in enumerate(turns, 1):
        assert turn.ending == TurnEndMessage("complete"), turn.messages
        assert heard(turn.text, n), turn.text
        assert dominant_frequency_hz(bytes(turn.audio)) == pytest.approx(600, abs=5)


async def test_openai_sdk_on_v1_realtime(sentence: np.ndarray, tmp_path: pathlib.Path) -> None:
    rate = 24_000
    utterance = spoken(sentence, rate)
    async with s2s_stack(tmp_path / "s2s.log") as base:
        from openai import AsyncOpenAI  # at use: the module is collected where S2S is absent too

        client = AsyncOpenAI(api_key="unused", websocket_base_url=f"{base}/v1",
                             base_url="http://127.0.0.1:9/v1")
        audio, transcript = bytearray(), []
        done: dict[str, Any] = {}
        async with client.realtime.connect(model="s2s") as conn:

            async def speak() -> None:
                start = asyncio.get_running_loop().time()
                step = rate * 2 // 10
                for i in range(0, len(utterance), step):
                    await conn.input_audio_buffer.append(
                        audio=base64.b64encode(utterance[i:i + step]).decode())
                    await at_real_time(start, (i + step) / (rate * 2))

            async with asyncio.timeout(within(40)), asyncio.TaskGroup() as tg:
                tg.create_task(speak())
                while True:
                    event: dict[str, Any] = json.loads(await conn.recv_bytes())
                    GA_EVENTS.validate_python(event, strict=True)
                    assert event["type"] != "error", event
                    if event["type"] == "response.output_audio.delta":
                        audio += base64.b64decode(event["delta"])
                    elif event["type"] == "response.output_audio_transcript.delta":
                        transcript.append(event["delta"])
                    elif event["type"] == "response.done":
                        done = event
                        break
        await client.close()
    assert done["response"]["status"] == "completed"
    assert heard("".join(transcript), 1), transcript
    assert dominant_frequency_hz(bytes(audio), rate) == pytest.approx(600, abs=5)


async def test_phone_call_on_twilio(sentence: np.ndarray, tmp_path: pathlib.Path) -> None:
    rate = 8_000
    async with s2s_stack(tmp_path / "s2s.log") as base, TwilioPeer.call(f"{base}/twilio") as peer:
        peer.say(spoken(sentence, rate))
        # "Turn 1: you said 1.6 seconds of speech." is about 1.6 s of tone: wait for 1 s of it
        await peer.wait_for(lambda p: len(p.received_ulaw()) >= rate, timeout_s=40)
        await peer.wait_for(lambda p: len(p.echoed_marks) == len(p.of("mark")))
        pcm = ulaw_to_pcm16(peer.received_ulaw())
        await peer.stop()
        await peer.wait_for(lambda p: p.close_code is not None)
    assert dominant_frequency_hz(pcm, rate) == pytest.approx(600, abs=5)
    assert peer.close_code == 1000


async def test_stop_mid_reply_reaches_the_server_as_response_cancel(
        sentence: np.ndarray, tmp_path: pathlib.Path) -> None:
    log = tmp_path / "s2s.log"
    # 0.3 s of tone per character: a reply of about 12 s, made in about 3 s
    async with s2s_stack(log, S2S_STUB_TTS_S_PER_CHAR="0.3") as base, \
            ProxyClient(f"{base}/audio_proxy") as client:
        stopped = await client.say(spoken(sentence, RATE_HZ), timeout_s=40, stop_after_audio=True)
        again = await client.say(spoken(sentence, RATE_HZ), timeout_s=60)
    server = log.read_text(errors="replace")
    assert stopped.ending == TurnEndMessage("stopped"), stopped.messages
    assert len(stopped.audio) < 12 * RATE_HZ * 2  # cut: far less than the whole reply
    assert "Response cancelled, listening re-enabled" in server
    assert "Response done (status=cancelled" in server
    assert again.ending == TurnEndMessage("complete"), again.messages
    assert re.fullmatch(r"Turn \d: you said \d+\.\d seconds of speech\.", again.text.strip()), again.text
