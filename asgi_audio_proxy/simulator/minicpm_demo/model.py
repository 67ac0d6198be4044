"""The gateway simulator's stand-in for MiniCPM-o 4.5 in audio full-duplex mode.

Owns: one conversation's model, fed one append at a time and answering each with exactly one
output, as the real worker does: ``Listened`` (the model listens) or ``Spoke`` (a piece of a
reply: text, 24 kHz float32 audio, ``end_of_turn``), with the KV cache length after it. Its
rules, deterministic so tests can check them:

- an append with sound (20 ms frames at RMS >= 0.01 for at least :data:`SOUND_S`) is heard as
  speech; the first append without it after some speech starts the reply;
- the reply is ``Turn N: heard H s of audio, V s of it sound.`` and, as audio, the sound it heard
  (from its first loud frame to its last, resampled to 24 kHz): a first piece of
  ``first_piece_s``, then 1 s pieces, the last one shorter and marked ``end_of_turn``; the text
  runs one piece ahead of the audio, as the real model's does;
- ``force_listen`` on an append, or :data:`BARGE_IN_S` of sound in one while it speaks, ends the
  reply at once (the answer is ``Listened``); what it heard then starts the next turn;
- every append costs :data:`TOKENS_PER_INPUT_S` per second, every piece of reply its words plus
  :data:`TOKENS_PER_OUTPUT_S` per second of audio: the KV cache grows towards the context.

Must not: do I/O, read a clock, or know the wire (``wire.py`` writes what this decides).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

import numpy as np

from asgi_audio_proxy.audio.resample import Resampler
from asgi_audio_proxy.simulator.vad import voiced_seconds

__all__ = [
    "BARGE_IN_S",
    "SOUND_S",
    "TOKENS_PER_INPUT_S",
    "TOKENS_PER_OUTPUT_S",
    "DuplexModel",
    "Listened",
    "Spoke",
]

INPUT_RATE_HZ, OUTPUT_RATE_HZ = 16_000, 24_000
#: sound in one append that makes it speech
SOUND_S = 0.1
#: sound in one append while the model speaks that makes it stop and listen
BARGE_IN_S = 0.5
TOKENS_PER_INPUT_S = 25
TOKENS_PER_OUTPUT_S = 12
_PROMPT_BASE_TOKENS = 64
_REF_AUDIO_TOKENS = 150
_FRAME = 320  # 20 ms at 16 kHz: the loudness measure's frame


@dataclass(frozen=True, slots=True)
class Listened:
    """The model listens (``response.listen``)."""

    kv_cache_length: int


@dataclass(frozen=True, slots=True)
class Spoke:
    """A piece of a reply (``response.output_audio.delta``)."""

    text: str
    samples: np.ndarray
    end_of_turn: bool
    kv_cache_length: int


@dataclass(slots=True)
class _Reply:
    texts: list[str]
    pieces: list[np.ndarray]


@dataclass(slots=True)
class DuplexModel:
    """One conversation. Call :meth:`prepare` once, then :meth:`step` for every append.

    Attributes:
        first_piece_s: audio in a reply's first piece (the real model's start-up makes it short).
        turns: replies started so far.
        kv_cache_length: tokens in the context now.
    """

    first_piece_s: float = 0.5
    turns: int = 0
    kv_cache_length: int = 0
    _heard: list[np.ndarray] = field(default_factory=list)
    _has_speech: bool = False
    _reply: _Reply | None = None

    @property
    def is_speaking(self) -> bool:
        return self._reply is not None

    def prepare(self, instructions: str, has_ref_audio: bool) -> int:
        """The system prompt (and a reference voice): returns the prompt's length in tokens."""
        self.kv_cache_length = (_PROMPT_BASE_TOKENS + math.ceil(len(instructions) / 4)
                                + (_REF_AUDIO_TOKENS if has_ref_audio else 0))
        return self.kv_cache_length

    def step(self, samples: np.ndarray, force_listen: bool = False) -> Listened | Spoke:
        """One append of float32 samples at 16 kHz; returns the one output it is answered with."""
        self.kv_cache_length += math.ceil(len(samples) / INPUT_RATE_HZ * TOKENS_PER_INPUT_S)
        sound_s = voiced_seconds(samples)
        if self._reply is not None:
            if not force_listen and sound_s < BARGE_IN_S:
                return self._next_piece()
            self._reply = None  # cut: what was heard now starts the next turn
            self._heard, self._has_speech = [samples], sound_s >= SOUND_S
            return Listened(self.kv_cache_length)
        self._heard.append(samples)
        if sound_s >= SOUND_S:
            self._has_speech = True
        elif self._has_speech and not force_listen:
            self._start_reply()
            return self._next_piece()
        return Listened(self.kv_cache_length)

    def _start_reply(self) -> None:
        heard = np.concatenate(self._heard)
        self._heard, self._has_speech = [], False
        self.turns += 1
        sound = voiced_seconds(heard)
        text = (f"Turn {self.turns}: heard {len(heard) / INPUT_RATE_HZ:.1f} s of audio, "
                f"{sound:.1f} s of it sound.")
        audio = _to_output_rate(_loud_span(heard))
        first = max(1, round(self.first_piece_s * OUTPUT_RATE_HZ))
        bounds = [0, *range(first, len(audio), OUTPUT_RATE_HZ), len(audio)]
        pieces = [audio[a:b] for a, b in itertools.pairwise(bounds) if b > a] or [audio[:0]]
        parts = _split_words(text, len(pieces) + 1)  # the text runs one piece ahead of the audio
        texts = [parts[0] + parts[1], *parts[2:]]
        self._reply = _Reply(texts, pieces)

    def _next_piece(self) -> Spoke:
        assert self._reply is not None
        text, samples = self._reply.texts.pop(0), self._reply.pieces.pop(0)
        end = not self._reply.pieces
        if end:
            self._reply = None
        self.kv_cache_length += len(text.split()) + math.ceil(len(samples) / OUTPUT_RATE_HZ
                                                                * TOKENS_PER_OUTPUT_S)
        return Spoke(text, samples, end, self.kv_cache_length)


def _loud_span(samples: np.ndarray) -> np.ndarray:
    """From the first 20 ms frame at RMS >= 0.01 to the last (empty if none is)."""
    frames = len(samples) // _FRAME
    shaped = samples[: frames * _FRAME].astype(np.float64).reshape(frames, _FRAME)
    loud = np.flatnonzero(np.sqrt(np.mean(np.square(shaped), axis=1)) >= 0.01)
    if not len(loud):
        return samples[:0]
    return samples[loud[0] * _FRAME:(loud[-1] + 1) * _FRAME]


def _to_output_rate(samples: np.ndarray) -> np.ndarray:
    if not len(samples):
        return np.zeros(0, np.float32)
    pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()
    resampler = Resampler(INPUT_RATE_HZ, OUTPUT_RATE_HZ)
    delay = round(resampler.delay_s * OUTPUT_RATE_HZ)
    wanted = len(samples) * OUTPUT_RATE_HZ // INPUT_RATE_HZ
    out = (resampler.feed(pcm) + resampler.flush())[2 * delay:2 * (delay + wanted)]
    return (np.frombuffer(out, "<i2").astype(np.float32) / 32768.0).astype(np.float32)


def _split_words(text: str, parts: int) -> list[str]:
    """``text`` in ``parts`` pieces cut at word starts; joined, they are ``text`` again."""
    starts = [0, *(m.start() + 1 for m in re.finditer(r" \S", text))]
    words = len(starts)
    bounds = [starts[(i * words) // parts] if (i * words) // parts < words else len(text)
              for i in range(parts)] + [len(text)]
    bounds[0] = 0
    return [text[bounds[i]:bounds[i + 1]] for i in range(parts)]
