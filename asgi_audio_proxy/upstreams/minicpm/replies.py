"""MiniCPM-o's reply stream translated into neutral reply events.

Owns: dropping each reply's first message (the echo of the user's own audio, section 4.2),
ending a reply at ``<end>`` (matched as a substring, section 7), stripping ``<|...|>`` special
tokens (section 9.3), decoding each reply WAV whatever its header says (24 kHz on 2.6, 16 kHz on
4.5; mixed down to mono) and cutting a reply that was stopped (section 8: the upstream's own
``/stop`` acts late). Audio leaves at the WAV's own rate: the session resamples once, to the
client dialect's rate. The reply's phase is a :class:`~asgi_audio_proxy.reply_state.ReplyLifecycle`:
a turn's body opens with the echo (start), plays until ``<end>`` (end) or a stop (cut), and closes
with the body (close). Must not: await, send, or build a client's wire format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ...audio.wav import AudioFormatError, b64decode_strict, wav_to_pcm16
from ...errors import UpstreamError, UpstreamProtocolError
from ...events import ReplyAudio, ReplyEnded, ReplyStarted, ReplyText, UpstreamEvent
from ...reply_state import ReplyLifecycle, ReplyPhase
from .wire import ReplyError, ReplyMessage
from .wire import UpstreamEvent as WireEvent

__all__ = ["ReplyRouter", "ReplyStats"]

_END_MARKER = "<end>"
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]{0,64}\|>")


@dataclass(slots=True)
class ReplyStats:
    cut_messages: int = 0  # messages dropped because the reply was stopped


@dataclass
class ReplyRouter:
    """Turns one conversation's SSE messages into neutral reply events; one per conversation."""

    stats: ReplyStats = field(default_factory=ReplyStats)
    #: idle: the next message is an echo; playing: echo seen, messages go to the client; cut:
    #: stopped, the rest is dropped; done: <end> seen, the body is about to close
    reply: ReplyLifecycle = field(default_factory=lambda: ReplyLifecycle("minicpm"))
    # ReplyStarted was emitted for the reply playing: the body opens with the echo, the
    # neutral start goes out with the first message after it (a wire detail, not a phase)
    _announced: bool = False

    @property
    def state(self) -> ReplyPhase:
        return self.reply.phase

    @property
    def has_open_reply(self) -> bool:
        """True between the echo and the end of that reply's body."""
        return self.reply.is_open

    @property
    def is_playing(self) -> bool:
        """True while a reply is reaching the client (it can be cut)."""
        return self.reply.is_playing

    def route(self, event: WireEvent) -> list[UpstreamEvent]:
        """Map one SSE message to reply events (possibly none).

        Raises:
            UpstreamError: the upstream reported an error of its own.
            UpstreamProtocolError: reply audio that is not a readable WAV.
        """
        if isinstance(event, ReplyError):
            raise UpstreamError(f"the upstream reported an error: {event.message}")
        phase = self.reply.phase
        if phase is ReplyPhase.IDLE:
            self.reply.start()  # this message is the echo: never played
            self._announced = False
            return []
        if phase is ReplyPhase.CUT:
            self.reply.more()
            self.stats.cut_messages += 1
            return []
        if phase is ReplyPhase.DONE:
            return []
        return self._play(event)

    def cut(self) -> bool:
        """The reply was stopped: drop the rest of it. Returns whether one was playing."""
        if not self.reply.is_playing:
            return False
        self.reply.cut()
        return True

    def body_closed(self) -> list[UpstreamEvent]:
        """The reply's SSE body ended, with or without ``<end>``; ready for the next turn."""
        out: list[UpstreamEvent] = []
        if self.reply.is_playing:  # ended without <end>: stopped upstream
            out = self._finish("interrupted")
        self.reply.close()
        return out

    def _play(self, event: ReplyMessage) -> list[UpstreamEvent]:
        out: list[UpstreamEvent] = []
        self.reply.more()
        if not self._announced:
            self._announced = True
            out.append(ReplyStarted())
        text, ended = event.text, _END_MARKER in event.text
        if ended:
            text = text.split(_END_MARKER, 1)[0]
        text = _SPECIAL_TOKEN.sub("", text)
        if text.strip():
            out.append(ReplyText(text))
        if event.audio_b64:
            audio = _decode(event.audio_b64)
            if audio.pcm:
                out.append(audio)
        if ended:
            out += self._finish("complete")
        return out

    def _finish(self, reason: str) -> list[UpstreamEvent]:
        self.reply.end()
        started, self._announced = self._announced, False
        ending: list[UpstreamEvent] = [ReplyEnded("complete" if reason == "complete" else "interrupted")]
        return ending if started else [ReplyStarted(), *ending]


def _decode(audio_b64: str) -> ReplyAudio:
    try:
        wav = wav_to_pcm16(b64decode_strict(audio_b64))
    except AudioFormatError as exc:
        raise UpstreamProtocolError(f"reply audio is not a PCM16 WAV: {exc}") from exc
    pcm = wav.pcm
    if wav.channels > 1:  # mix down; the upstream writes mono, a fork might not
        frames = np.frombuffer(pcm, "<i2").reshape(-1, wav.channels).mean(axis=1)
        pcm = frames.astype("<i2").tobytes()
    return ReplyAudio(pcm, wav.sample_rate_hz)
