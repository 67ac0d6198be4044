"""The reply path's core: upstream SSE events in, client messages out.

Owns: dropping each reply's first message (the echo of the user's own audio, section 4.2),
ending a reply at ``<end>`` (matched as a substring, section 7), stripping ``<|...|>`` special
tokens (section 9.3), decoding each reply WAV whatever its rate (24 kHz on 2.6, 16 kHz on 4.5)
and resampling it to 16 kHz with one resampler per reply, and cutting a reply the client
stopped (section 8: the upstream's own ``/stop`` acts late). Must not: await, send or build
JSON by hand.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field

import numpy as np

from ...audio.resample import Resampler
from ...audio.wav import CLIENT_SAMPLE_RATE_HZ, AudioFormatError, b64decode_strict, wav_to_pcm16
from ...errors import UpstreamError, UpstreamProtocolError
from .wire import ReplyError, ReplyMessage, UpstreamEvent

__all__ = ["ClientMessage", "ReplyRouter", "ReplyState", "client_event", "error_message"]

#: a text frame (JSON) or a binary frame (PCM16 16 kHz mono) for the client
ClientMessage = str | bytes
_END_MARKER = "<end>"
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]{0,64}\|>")


class ReplyState(enum.Enum):
    WAITING = "waiting"  # no reply yet: the next message is an echo
    PLAYING = "playing"  # echo seen; reply messages go to the client
    CUT = "cut"  # the client stopped it; the rest is dropped
    ENDED = "ended"  # <end> seen; the body is about to close


@dataclass(slots=True)
class ReplyStats:
    replies: int = 0  # replies that reached the client, whole or cut
    reply_audio_bytes: int = 0  # PCM16 sent to the client, after resampling
    cut_messages: int = 0  # messages dropped because the client stopped the reply


def _json(payload: dict[str, object]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def client_event(**fields: object) -> str:
    """A JSON event for the client (``type`` first)."""
    return _json(fields)


def error_message(kind: str, message: str, code: int) -> str:
    """The ``error`` event for the client."""
    return _json({"type": "error", "error": kind, "code": code, "message": message})


@dataclass
class ReplyRouter:
    """Turns one conversation's upstream events into client messages; one per session."""

    out_rate_hz: int = CLIENT_SAMPLE_RATE_HZ
    state: ReplyState = ReplyState.WAITING
    stats: ReplyStats = field(default_factory=ReplyStats)
    #: bumped by every cut, so a sender can tell that what it holds is stale
    generation: int = 0
    _resampler: Resampler | None = None

    @property
    def has_open_reply(self) -> bool:
        """True between the echo and the end of that reply's body."""
        return self.state in (ReplyState.PLAYING, ReplyState.ENDED, ReplyState.CUT)

    def route(self, event: UpstreamEvent) -> list[ClientMessage]:
        """Map one upstream event to what the client should get (possibly nothing).

        Raises:
            UpstreamError: the upstream reported an error of its own.
            UpstreamProtocolError: reply audio that is not a readable WAV.
        """
        if isinstance(event, ReplyError):
            raise UpstreamError(f"the upstream reported an error: {event.message}")
        if self.state is ReplyState.WAITING:
            self.state = ReplyState.PLAYING  # this message is the echo: never played
            return []
        if self.state is ReplyState.CUT:
            self.stats.cut_messages += 1
            return []
        if self.state is ReplyState.ENDED:
            return []
        return self._play(event)

    def cut(self) -> list[ClientMessage]:
        """The client stopped the reply: drop the rest of it; returns the ``turn_end``."""
        if self.state is not ReplyState.PLAYING:
            return []
        self.state = ReplyState.CUT
        self.stats.replies += 1
        self.generation += 1
        self._resampler = None
        return [_json({"type": "turn_end", "reason": "stopped"})]

    def body_closed(self) -> list[ClientMessage]:
        """The reply's SSE body ended, with or without ``<end>``; ready for the next turn."""
        out: list[ClientMessage] = []
        if self.state is ReplyState.PLAYING:  # ended without <end>: stopped upstream
            out = self._finish(reason="interrupted")
        self.state = ReplyState.WAITING
        self._resampler = None
        return out

    def _play(self, event: ReplyMessage) -> list[ClientMessage]:
        out: list[ClientMessage] = []
        text, ended = event.text, _END_MARKER in event.text
        if ended:
            text = text.split(_END_MARKER, 1)[0]
        text = _SPECIAL_TOKEN.sub("", text)
        if text.strip():
            out.append(_json({"type": "text", "content": text}))
        if event.audio_b64:
            pcm = self._decode(event.audio_b64)
            if pcm:
                out.append(pcm)
        if ended:
            out += self._finish(reason="complete")
        return out

    def _decode(self, audio_b64: str) -> bytes:
        try:
            wav = wav_to_pcm16(b64decode_strict(audio_b64))
        except AudioFormatError as exc:
            raise UpstreamProtocolError(f"reply audio is not a PCM16 WAV: {exc}") from exc
        pcm = wav.pcm
        if wav.channels > 1:  # mix down; the upstream writes mono, a fork might not
            frames = np.frombuffer(pcm, "<i2").reshape(-1, wav.channels).mean(axis=1)
            pcm = frames.astype("<i2").tobytes()
        if self._resampler is None or self._resampler.in_rate_hz != wav.sample_rate_hz:
            self._resampler = Resampler(wav.sample_rate_hz, self.out_rate_hz)
        out = self._resampler.feed(pcm)
        self.stats.reply_audio_bytes += len(out)
        return out

    def _finish(self, *, reason: str) -> list[ClientMessage]:
        out: list[ClientMessage] = []
        if self._resampler is not None:
            tail = self._resampler.flush()
            self._resampler = None
            if tail:
                self.stats.reply_audio_bytes += len(tail)
                out.append(tail)
        self.state = ReplyState.ENDED
        self.stats.replies += 1
        out.append(_json({"type": "turn_end", "reason": reason}))
        return out
