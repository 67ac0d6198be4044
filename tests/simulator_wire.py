"""Shared pieces of the simulator tests: a hand-driven clock and the upstream's wire frames."""

from __future__ import annotations

import base64
import json
from typing import Any

from asgi_audio_proxy.audio import MESSAGE_BYTES, pcm16_to_wav
from tests.signals import silence, tone

OPTIONS = {"hd_video": False, "use_audio_prompt": 1, "vad_threshold": 0.8,
           "voice_clone_prompt": "Imitate.", "assistant_prompt": "Brief."}
SPEECH = tone(440, 1.0) + silence(1.2)  # the VAD ends this turn at its 10th message


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def pieces(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + MESSAGE_BYTES] for i in range(0, len(pcm), MESSAGE_BYTES)]


def audio_message(pcm: bytes, *, raw: bool = False) -> dict[str, Any]:
    data = pcm if raw else pcm16_to_wav(pcm)
    item = {"type": "input_audio",
            "input_audio": {"data": base64.b64encode(data).decode(), "format": "wav", "timestamp": "1"}}
    return {"role": "user", "content": [item]}


def frame(pcm: bytes, uid: str = "U1", *, raw: bool = False) -> str:
    return json.dumps({"uid": uid, "messages": [audio_message(pcm, raw=raw)]})


def ack(uid: str, reason: str, content: str = "success") -> str:
    choices = {"role": "assistant", "content": content, "finish_reason": reason}
    return json.dumps({"id": uid, "choices": choices}, separators=(",", ":"))


