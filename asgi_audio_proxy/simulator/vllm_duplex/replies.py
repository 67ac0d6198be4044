"""The simulated model's replies: what it says, and the 1 s units of 24 kHz audio it says it in.

Owns: :class:`Reply` (a response's ids, its text parts, how far it got, what was played of it)
and the deterministic reply for what was heard: a tone at the strongest frequency of the speech
(440 Hz if too little was heard), as many 1 s units as whole seconds of speech (at least one, at
most ``max_units``, or exactly ``units``), text ``Turn N: heard H s of speech.`` split on word
boundaries over the units, one part per unit. Must not: know about events or sockets.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asgi_audio_proxy.simulator.vllm_duplex.wire import INPUT_RATE_HZ, OUTPUT_RATE_HZ, UNIT_MS

__all__ = ["MAX_REPLY_UNITS", "Reply", "plan_reply", "unit_audio"]

MAX_REPLY_UNITS = 8
_AMPLITUDE = 0.3 * 32767


@dataclass(slots=True)
class Reply:
    """One response of a session."""

    response_id: str
    item_id: str
    turn: int
    frequency_hz: float
    parts: list[str]
    sent_units: int = 0
    status: str = "in_progress"
    played_ms: int = 0

    @property
    def generated_ms(self) -> int:
        return self.sent_units * UNIT_MS

    @property
    def transcript(self) -> str:
        return "".join(self.parts[: self.sent_units])


def plan_reply(speech: Sequence[np.ndarray], heard_s: float, turn: int, units: int | None,
               max_units: int = MAX_REPLY_UNITS) -> Reply:
    """The reply to ``heard_s`` seconds of speech found in ``speech`` (the float units at 16 kHz
    that held it), the ``turn``-th of its session."""
    samples = np.concatenate(list(speech)) if speech else np.zeros(0, np.float32)
    count = units or max(1, min(max_units, round(heard_s)))
    words = f"Turn {turn}: heard {heard_s:.1f} s of speech.".split(" ")
    per = math.ceil(len(words) / count)
    parts = [" ".join(words[i * per:(i + 1) * per]) + (" " if (i + 1) * per < len(words) else "")
             for i in range(count)]
    return Reply(f"resp_{uuid.uuid4().hex[:12]}", f"item_{uuid.uuid4().hex[:12]}", turn,
                 _dominant_hz(samples), parts)


def unit_audio(reply: Reply, index: int) -> bytes:
    """The ``index``-th second of the reply: PCM16 at 24 kHz, its phase continuing the last."""
    t = np.arange(OUTPUT_RATE_HZ * UNIT_MS // 1000) / OUTPUT_RATE_HZ + index * UNIT_MS / 1000
    return (_AMPLITUDE * np.sin(2 * np.pi * reply.frequency_hz * t)).astype("<i2").tobytes()


def _dominant_hz(samples: np.ndarray) -> float:
    if len(samples) < 1_024:
        return 440.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum[1:]) + 1) * INPUT_RATE_HZ / len(samples)
