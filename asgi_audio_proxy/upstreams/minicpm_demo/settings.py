"""The ``minicpm-demo`` upstream's settings: one frozen value per gateway, chosen by the operator.

Owns: :class:`DemoSettings` with its named defaults and validation (a ``ValueError`` naming the
field and the value), and what a conversation's neutral options become in the gateway's
``session.update`` (:meth:`DemoSettings.map_options`). Must not: open sockets, read files or the
environment, or hold a conversation's options (those come as ``UpstreamOptions`` at connect).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

from ...audio.resample import Resampler
from ...audio.wav import AudioFormatError, pcm16_to_wav, wav_to_pcm16
from ...config import ConversationOptions

__all__ = ["DemoSettings"]

#: the gateway's unit of input: one append is one second of 16 kHz audio
DEFAULT_APPEND_S = 1.0
#: the shortest append the gateway takes (4 000 samples) and the longest worth sending
MIN_APPEND_S, MAX_APPEND_S = 0.25, 2.0
#: part of an append goes, padded with silence, once the client has been quiet this long (the
#: model answers each append: they must keep coming)
DEFAULT_SILENCE_AFTER_S = 0.25
#: how long to wait for the gateway's queue events before sending the session update anyway
#: (the gateway's own page waits 100 ms; a gateway with a free worker says ``queue_done`` at once)
DEFAULT_QUEUE_GRACE_S = 0.1
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_CLOSE_TIMEOUT_S = 2.0
#: what the gateway's reference voices are: WAV at 16 kHz
REF_AUDIO_RATE_HZ = 16_000
#: the gateway's default system prompt, sent when the conversation has none (the schema wants one)
DEFAULT_INSTRUCTIONS = "You are a helpful assistant."
#: a reference voice longer than this is a mistake (the model wants a few seconds)
MAX_REF_AUDIO_BYTES = 2 * 30 * REF_AUDIO_RATE_HZ + 44


@dataclass(frozen=True, kw_only=True)
class DemoSettings:
    """How the proxy talks to a MiniCPM-o-Demo gateway's ``/v1/realtime?mode=audio``.

    Attributes:
        append_s: audio per append. The gateway's unit is 1 s; the model answers each append
            with one event, so shorter appends reply sooner but cost more steps.
        silence_after_s: part of an append goes, padded with silence, once the client has sent
            nothing for this long (while it says nothing at all, silence goes every ``append_s``).
        queue_grace_s: how long to wait, after the handshake, for the gateway to say
            ``session.queued`` or ``session.queue_done`` before the session update goes anyway.
        ref_audio: the LLM's reference voice, a 16 kHz WAV file's bytes (``None``: the gateway's).
        tts_ref_audio: the speech synthesiser's reference voice (``None``: ``ref_audio``'s).
        connect_timeout_s: the handshake, and then the answer to the session update, each.
        close_timeout_s: each teardown step (the ``session.close`` and its answer, the close).
    """

    append_s: float = DEFAULT_APPEND_S
    silence_after_s: float = DEFAULT_SILENCE_AFTER_S
    queue_grace_s: float = DEFAULT_QUEUE_GRACE_S
    ref_audio: bytes | None = field(default=None, repr=False)
    tts_ref_audio: bytes | None = field(default=None, repr=False)
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S

    def __post_init__(self) -> None:
        _check(_is_seconds(self.append_s) and MIN_APPEND_S <= self.append_s <= MAX_APPEND_S,
               "append_s", self.append_s, f"seconds from {MIN_APPEND_S} to {MAX_APPEND_S}")
        for name in ("silence_after_s", "queue_grace_s", "connect_timeout_s", "close_timeout_s"):
            value = getattr(self, name)
            _check(_is_seconds(value) and (value > 0 or name == "silence_after_s"), name, value,
                   "a positive finite number of seconds")
        for name in ("ref_audio", "tts_ref_audio"):
            wav = getattr(self, name)
            if wav is not None:
                _check(isinstance(wav, bytes) and _is_16k_wav(wav), name, f"<{len(wav)} bytes>",
                       f"a mono 16 kHz WAV file of at most {MAX_REF_AUDIO_BYTES} bytes")

    def map_options(self, conversation: ConversationOptions) -> dict[str, Any]:
        """The ``session.update``'s ``session`` fields neutral options map to.

        ``instructions`` → ``instructions`` (else the gateway's own default: the field is
        required); the conversation's reference audio (resampled to 16 kHz), else
        :attr:`ref_audio` → ``ref_audio``, base64 WAV; :attr:`tts_ref_audio` → ``tts_ref_audio``.
        Not mapped: a voice by name (the gateway clones reference audio only) and
        ``vad_threshold`` (the model owns the turns: there is no VAD to tune).
        """
        fields: dict[str, Any] = {"instructions": conversation.instructions or DEFAULT_INSTRUCTIONS}
        voice = self.ref_audio
        if conversation.reference_audio is not None:
            voice = _wav_16k(conversation.reference_audio, conversation.reference_rate_hz)
        for key, wav in (("ref_audio", voice), ("tts_ref_audio", self.tts_ref_audio)):
            if wav is not None:
                fields[key] = base64.b64encode(wav).decode("ascii")
        return fields

    @property
    def append_samples(self) -> int:
        """Samples of 16 kHz audio in one append."""
        return round(self.append_s * REF_AUDIO_RATE_HZ)


def _wav_16k(pcm: bytes, rate_hz: int) -> bytes:
    if rate_hz != REF_AUDIO_RATE_HZ:  # whole, so the filter's delay is cut from its start
        resampler = Resampler(rate_hz, REF_AUDIO_RATE_HZ)
        delay = round(resampler.delay_s * REF_AUDIO_RATE_HZ)
        wanted = len(pcm) // 2 * REF_AUDIO_RATE_HZ // rate_hz
        pcm = (resampler.feed(pcm) + resampler.flush())[2 * delay:2 * (delay + wanted)]
    return pcm16_to_wav(pcm, REF_AUDIO_RATE_HZ)


def _is_16k_wav(wav: bytes) -> bool:
    if len(wav) > MAX_REF_AUDIO_BYTES:
        return False
    try:
        audio = wav_to_pcm16(wav)
    except AudioFormatError:
        return False
    return audio.sample_rate_hz == REF_AUDIO_RATE_HZ and audio.channels == 1


def _is_seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(f"invalid {name}={value!r}: expected {expected}")
