"""The test client behind ``asgi-audio-proxy client``: talk to a proxy, print and save what it says.

Owns: one conversation with a running proxy over its client protocol (read through the protocol's
client half, :mod:`~asgi_audio_proxy.dialects.native_client`): wait for ``ready`` (showing
``queued`` updates), optionally send a ``config``, stream audio at real-time pace (silence
included, as the upstream's VAD needs), and read replies concurrently: the live transcript, the
per-turn latency, the reply audio (saved as a 16 kHz WAV); a connection cut under it (no
close frame) is resumed (``reconnect.py``), and the console says so. Sources: ``generated``
turns, a WAV file, or the microphone (``microphone.py``). Signals live in ``audio.py`` and the bookkeeping
in ``turns.py``; this module is their async edge.
Must not: print for a library user (output goes to the :class:`Console` it is given).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..audio.wav import pcm16_to_wav
from ..dialects.native import ConfigControl
from ..dialects.native_client import (
    AudioMessage,
    BadProxyMessage,
    ConfigAppliedMessage,
    ErrorMessage,
    NativeClient,
    QueuedMessage,
    ReadyMessage,
    TextMessage,
    TurnEndMessage,
    encode_control,
)
from .audio import FRAME_BYTES, FRAME_S, is_loud, split_frames
from .console import Console
from .microphone import MicrophoneCapture
from .reconnect import ResumeRefused, is_cut, reconnect
from .turns import TurnResult, TurnTracker

__all__ = ["TalkFailed", "TalkOptions", "talk"]

Mode = Literal["generated", "file", "microphone"]
#: replies kept for ``--save``: ten minutes of 16 kHz PCM16; more is counted, not kept
MAX_SAVED_REPLY_BYTES = 10 * 60 * 16_000 * 2
#: connecting and waiting for ``ready`` (longer if the proxy says we are queued)
READY_TIMEOUT_S = 15.0


class TalkFailed(Exception):
    """The conversation could not happen: no connection, or the proxy reported an error."""


@dataclass(frozen=True, kw_only=True)
class TalkOptions:
    """What ``asgi-audio-proxy client`` was asked to do.

    Attributes:
        proxy_url: the proxy's WebSocket URL.
        mode: the audio source.
        utterance: PCM16 16 kHz mono said once per turn (``generated`` and ``file`` modes).
        turns: turns to complete; ``None`` in microphone mode means until Ctrl-C.
        pause_s: silence after each reply before the next turn starts.
        reply_timeout_s: how long to wait for a reply to start after the user's audio ends.
        config: a ``config`` message's fields (``assistantPrompt``, ``vadThreshold``), or empty.
        save: where to write all reply audio as a WAV file, or ``None``.
    """

    proxy_url: str
    mode: Mode
    utterance: bytes = b""
    turns: int | None = 1
    pause_s: float = 1.0
    reply_timeout_s: float = 15.0
    config: dict[str, Any] | None = None
    save: Path | None = None


class _Conversation:
    """One run: the socket, the tracker, and the events the sender waits on."""

    def __init__(self, ws: ClientConnection, options: TalkOptions, console: Console) -> None:
        self.ws, self.options, self.console = ws, options, console
        self.tracker = TurnTracker()
        self.proxy = NativeClient()
        self.reply_pcm = bytearray()
        self.error: str | None = None
        self.sender: asyncio.Task[None] | None = None
        self.resumes = 0
        self._resuming = asyncio.Lock()

    async def send(self, frame: bytes | str) -> None:
        """Send on the connection of the moment; a cut is resumed (the frame is lost)."""
        ws = self.ws
        try:
            await ws.send(frame)
        except ConnectionClosed as exc:
            if not is_cut(exc) or self.proxy.resume_token is None:
                raise
            await self.resume(ws)

    async def resume(self, lost: ClientConnection) -> None:
        """Take the session back on a new connection after ``lost`` was cut (once, whoever of
        the sender and the receiver notices first).

        Raises:
            TalkFailed: the proxy refused the resume, or could not be reached in time.
        """
        async with self._resuming:
            if self.ws is not lost:
                return  # the other side resumed already
            self.console.status("connection lost: resuming")
            try:
                ws, answer = await reconnect(self.options.proxy_url, self.proxy)
            except ResumeRefused as exc:
                raise TalkFailed(f"the connection was lost and could not be resumed: {exc}") from exc
            self.ws = ws
            self.resumes += 1
            self.console.status(f"resumed: session {answer.session_id}")

    async def handshake(self) -> None:
        async with asyncio.timeout(READY_TIMEOUT_S):
            while not self.proxy.is_ready:
                match self.proxy.receive(await self.ws.recv()):
                    case QueuedMessage(position=position, eta_s=eta_s):
                        self.console.status(f"queued: position {position}, about {eta_s} s")
                    case ErrorMessage() as error:
                        raise TalkFailed(_error_text(error))
                    case ReadyMessage(session_id=session_id, upstream_version=version):
                        self.console.status(f"connected: session {session_id}, upstream {version}")
            if self.options.config:
                await self.ws.send(encode_control(ConfigControl(self.options.config)))
                while True:  # audio must not go before the config is applied
                    match self.proxy.receive(await self.ws.recv()):
                        case ErrorMessage() as error:
                            raise TalkFailed(_error_text(error))
                        case ConfigAppliedMessage():
                            break

    async def receive(self) -> None:
        """Read replies until the socket closes.

        Raises:
            BadProxyMessage: the proxy sent something its protocol does not have.
        """
        loop = asyncio.get_running_loop()
        while True:
            ws = self.ws
            try:
                async for frame in ws:
                    self._take(frame, loop.time())
                break
            except ConnectionClosed as exc:
                if not is_cut(exc) or self.proxy.resume_token is None:
                    raise
                await self.resume(ws)
        # the proxy ended the conversation: stop talking (a microphone would wait forever)
        if self.sender is not None and not self.sender.done():
            self.sender.cancel()

    def _take(self, frame: bytes | str, now: float) -> None:
        """One frame from the proxy: the transcript, the reply audio, a turn's end, an error."""
        match self.proxy.receive(frame):
            case AudioMessage(pcm=pcm):
                self.tracker.reply_audio_received(now, len(pcm))
                room = MAX_SAVED_REPLY_BYTES - len(self.reply_pcm)
                self.reply_pcm += pcm[: max(room, 0)]
            case TextMessage(text=text):
                self.tracker.reply_text_received(text)
                self.console.reply_text(text)
            case TurnEndMessage(reason=reason):
                self._finish_turn(reason)
            case ErrorMessage() as error:
                self.error = _error_text(error)
                self.console.status(f"error: {self.error}")

    def _finish_turn(self, reason: str) -> TurnResult:
        result = self.tracker.turn_ended(reason)
        self.console.turn_result(result)
        return result

    async def send_turns(self, frames: AsyncGenerator[bytes, None] | None) -> None:
        """Say the utterance, then silence until every reply it asked for has ended, then pause;
        ``turns`` times. A reply that ends while the utterance is still going out (a recording
        with a long quiet end) has answered it: the tracker knows, and nothing more is awaited."""
        if frames is not None:
            await self._send_live(frames)
            return
        pacer = _Pacer()
        turns = self.options.turns or 1
        await pacer.send_silence(self, 0.3)  # a moment of room tone before the first word
        for turn in range(turns):
            self.console.status(f"turn {turn + 1}/{turns}: speaking "
                                f"{len(self.options.utterance) / 32_000:.1f} s")
            self.tracker.utterance_started()
            for frame in split_frames(self.options.utterance):
                await pacer.send(self, frame)
            self.tracker.utterance_ended(asyncio.get_running_loop().time())
            await self._await_reply(pacer)
            if turn < turns - 1:
                await pacer.send_silence(self, self.options.pause_s)
        await self.ws.close()

    async def _await_reply(self, pacer: _Pacer) -> None:
        """Keep sending silence while a reply is owed, or until none starts in time."""
        deadline = asyncio.get_running_loop().time() + self.options.reply_timeout_s
        # checked once per frame: the sender wakes every 50 ms anyway, to send the silence
        while self.tracker.owes_reply:
            if not self.tracker.in_reply and asyncio.get_running_loop().time() > deadline:
                self.console.status("no reply in time")
                self._finish_turn("timeout")
                return
            await pacer.send(self, bytes(FRAME_BYTES))

    async def _send_live(self, frames: AsyncGenerator[bytes, None]) -> None:
        loop = asyncio.get_running_loop()
        async with contextlib.aclosing(frames):  # closes the device as soon as we stop
            async for frame in frames:
                await self.send(frame)
                self.tracker.frame_sent(loop.time(), len(frame), loud=is_loud(frame))
                self.console.progress(self.tracker)
                if self.options.turns is not None and len(self.tracker.results) >= self.options.turns:
                    break
        await self.ws.close()


class _Pacer:
    """Sends frames at real-time pace against an absolute schedule, so delays never add up."""

    def __init__(self) -> None:
        self._next: float | None = None

    async def send(self, conversation: _Conversation, frame: bytes) -> None:
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.time()
        # pacing a real-time sender, not synchronising: the frame is "recorded" by then
        await asyncio.sleep(max(0.0, self._next - loop.time()))
        self._next += len(frame) / 32_000
        await conversation.send(frame)
        conversation.tracker.frame_sent(loop.time(), len(frame), loud=is_loud(frame))
        conversation.console.progress(conversation.tracker)

    async def send_silence(self, conversation: _Conversation, seconds: float) -> None:
        for _ in range(round(seconds / FRAME_S)):
            await self.send(conversation, bytes(FRAME_BYTES))


async def talk(options: TalkOptions, console: Console,
               microphone: MicrophoneCapture | None = None) -> int:
    """Hold one conversation with the proxy; return the exit code (0: every turn got a reply).

    Args:
        options: what to do.
        console: where the transcript, progress and results go.
        microphone: the capture to stream in microphone mode.

    Raises:
        TalkFailed: no connection, or the proxy refused or failed the conversation.
    """
    try:
        ws = await connect(options.proxy_url, open_timeout=READY_TIMEOUT_S, max_size=2**20)
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise TalkFailed(f"cannot connect to {options.proxy_url}: {exc}") from exc
    conversation = _Conversation(ws, options, console)
    try:
        async with ws:
            await conversation.handshake()
            frames = microphone.frames() if microphone is not None else None
            async with asyncio.TaskGroup() as tg:
                conversation.sender = tg.create_task(conversation.send_turns(frames))
                tg.create_task(conversation.receive())
    except* ConnectionClosed as group:
        if conversation.error is None:
            conversation.error = f"connection closed: {group.exceptions[0]}"
    except* BadProxyMessage as group:
        conversation.error = f"the proxy broke its protocol: {group.exceptions[0]}"
    except* TalkFailed as group:  # a resume refused
        conversation.error = str(group.exceptions[0])
    finally:
        await conversation.ws.close()  # a resumed connection is not the one opened here
        if options.save is not None:
            options.save.write_bytes(pcm16_to_wav(bytes(conversation.reply_pcm)))
            console.status(f"saved {len(conversation.reply_pcm) / 32_000:.1f} s of reply audio "
                           f"to {options.save}")
    if conversation.error is not None:
        raise TalkFailed(conversation.error)
    expected = options.turns if options.turns is not None else len(conversation.tracker.results)
    answered = conversation.tracker.all_answered(max(expected, 1))
    console.summary(conversation.tracker.results, answered)
    return 0 if answered else 1


def _error_text(error: ErrorMessage) -> str:
    return f"{error.kind} (close code {error.code}): {error.message}"
