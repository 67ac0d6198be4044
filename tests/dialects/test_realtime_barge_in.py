"""Voice barge-in in the Realtime dialect, with the official ``openai`` SDK as the client: the user
talks (``espeak-ng`` speech) over a reply; the proxy says ``input_audio_buffer.speech_started``
(with its ``item_id`` and ``audio_start_ms``), ends the reply with ``response.done`` ``cancelled``
/ ``turn_detected`` and nothing more of it, and the words get a reply of their own. Every event
is validated strictly against the SDK's types."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asgi_audio_proxy.audio import Resampler
from asgi_audio_proxy.config import ProxyConfig
from asgi_audio_proxy.dialects.realtime import realtime_dialect
from asgi_audio_proxy.edge.middleware import AudioProxyMiddleware
from tests.clients import at_real_time
from tests.conftest import running_simulator
from tests.servers import serve
from tests.signals import silence, tone
from tests.timing import within
from tests.vad.speech import SpeechBank, espeak_missing_reason, to_pcm

from .realtime_support import GA_EVENTS
from .test_realtime_sdk import check_key, not_found

pytestmark = pytest.mark.skipif(espeak_missing_reason() is not None, reason=espeak_missing_reason() or "")
RATE_HZ = 24_000
STEP = RATE_HZ * 2 // 50  # 20 ms appends


async def test_talking_over_a_reply_cancels_it_as_turn_detected(tmp_path: Path) -> None:
    speech16 = to_pcm(0.5 * (u := SpeechBank(tmp_path).utterance("Hold on, stop, listen.").samples)
                      / np.abs(u).max())
    resampler = Resampler(16_000, RATE_HZ)
    speech = resampler.feed(speech16) + resampler.flush()
    first_turn = tone(440, 2.0, RATE_HZ) + silence(1.4, RATE_HZ)
    events: list[dict[str, Any]] = []
    spoke_at_ms: list[float] = []
    async with running_simulator(chunk_delay_s=0.45) as up:
        app = AudioProxyMiddleware(not_found, config=ProxyConfig(
            upstream_url=up.url, chunk_duration=0.2, barge_in="voice"),
            dialects={"/v1/realtime": realtime_dialect}, authenticate=check_key)
        async with serve("uvicorn", app) as port:
            from openai import AsyncOpenAI  # at use, not at collection

            client = AsyncOpenAI(api_key="sk-proxy-test", base_url="http://127.0.0.1:9/v1",
                                 websocket_base_url=f"ws://127.0.0.1:{port}/v1")
            async with client.realtime.connect(model="minicpm-o") as conn:
                reply_audio = asyncio.Event()
                done = asyncio.Event()

                async def microphone() -> None:
                    start, sent, script = asyncio.get_running_loop().time(), 0, bytearray(first_turn)
                    while not done.is_set() and sent < 30 * RATE_HZ * 2:
                        if reply_audio.is_set() and not spoke_at_ms:
                            spoke_at_ms.append(sent / 2 / RATE_HZ * 1000)
                            script[:] = speech + silence(2.0, RATE_HZ)
                        frame = bytes(script[:STEP]).ljust(STEP, b"\0")
                        del script[:STEP]
                        await conn.input_audio_buffer.append(audio=base64.b64encode(frame).decode())
                        sent += STEP
                        await at_real_time(start, sent / 2 / RATE_HZ)

                async def speaker() -> None:
                    transcript, scheduled = "", []
                    while True:
                        event: dict[str, Any] = json.loads(await conn.recv_bytes())
                        GA_EVENTS.validate_python(event, strict=True)
                        events.append(event)
                        assert event["type"] != "error", event
                        if event["type"] == "response.output_audio.delta" and not scheduled:
                            scheduled.append(True)  # speak 0.4 s into the first reply
                            asyncio.get_running_loop().call_later(0.4, reply_audio.set)
                        if event["type"] == "response.output_audio_transcript.delta":
                            transcript += event["delta"]
                        if event["type"] == "response.done" and "Turn 2" in transcript:
                            done.set()
                            return

                async with asyncio.timeout(within(40)), asyncio.TaskGroup() as tg:
                    tg.create_task(microphone())
                    tg.create_task(speaker())
            await client.close()
        await app.proxy.aclose()
    dones = [e["response"] for e in events if e["type"] == "response.done"]
    assert [(d["status"], (d.get("status_details") or {}).get("reason")) for d in dones] == [
        ("cancelled", "turn_detected"), ("completed", None)]
    cancelled_id = dones[0]["id"]
    cut_at = next(i for i, e in enumerate(events) if e["type"] == "response.done")
    assert not [e for e in events[cut_at + 1:] if e.get("response_id") == cancelled_id]
    # the speech that cut the first reply (the turn it answered was bracketed before it)
    first_reply = next(i for i, e in enumerate(events) if e["type"] == "response.created")
    started = [e for e in events[first_reply:] if e["type"] == "input_audio_buffer.speech_started"]
    assert started and started[0]["item_id"]
    assert 0 <= started[0]["audio_start_ms"] - spoke_at_ms[0] < 300, (started, spoke_at_ms)
