"""``DuplexConversation`` with no socket: what the simulated model says it heard of a turn,
wherever the turn falls against its 1 s units of input."""

from __future__ import annotations

import base64
import re

import pytest

from asgi_audio_proxy.simulator.vllm_duplex import DuplexConversation
from tests.signals import silence, tone


def heard_in(events: list[dict[str, object]]) -> list[float]:
    """The seconds each reply's transcript says it heard, in order."""
    texts = [str(e["transcript"]) for e in events if e["type"] == "response.output_audio_transcript.done"]
    return [float(re.fullmatch(r"Turn \d+: heard (\d+\.\d) s of speech\.", t).group(1))  # type: ignore[union-attr]
            for t in texts]


def say(pcm: bytes) -> list[dict[str, object]]:
    conversation = DuplexConversation("sess", {"ref_audio": "voice"})
    events: list[dict[str, object]] = []
    for i in range(0, len(pcm), 3_200):  # 100 ms appends, as a client streams them
        audio = base64.b64encode(pcm[i:i + 3_200]).decode("ascii")
        events += conversation.handle({"type": "input_audio_buffer.append", "audio": audio})
    return events


def test_a_second_of_speech_on_a_unit_boundary_is_heard_as_a_second() -> None:
    assert heard_in(say(tone(440, 1.0) + silence(3.0))) == [1.0]


@pytest.mark.parametrize("offset_s", [0.1, 0.25, 0.5, 0.75, 0.9])
def test_a_second_of_speech_across_a_unit_boundary_is_one_turn_heard_near_a_second(offset_s: float) -> None:
    # each unit's voice detector pads the speech it holds and drops a piece too short to count,
    # so the figure moves with where the boundary falls (0.9 s at 0.1 s, 1.5 s at 0.5 s): a band,
    # not 1 s exactly (tests/vllm_duplex/test_dialects.py holds a second turn to it)
    [heard] = heard_in(say(silence(offset_s) + tone(440, 1.0) + silence(3.0)))
    assert 0.8 <= heard <= 1.6
