"""One WebRTC call as a session's client connection.

Owns: :class:`WebRTCCall`, the :class:`~asgi_audio_proxy.dialects.connection.ClientConnection`
a session runs over for a call: the ``oai-events`` data channel's messages and the microphone's
PCM come out of :meth:`~WebRTCCall.receive`; text goes to the data channel (held until it opens),
PCM to the reply track's playout. The call ends (``ClientGone``) when the peer connection fails
or closes, or when no audio has come for ``media_timeout_s`` (a closed tab sends nothing that
ends a call: its RTP just stops). Must not: parse events (the dialect does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from ..dialects.realtime.wire import IdSource, dump
from ..errors import ClientGone
from .playout import Playout
from .tracks import MicrophoneReader, ReplyTrack

__all__ = ["EVENTS_CHANNEL", "CallTimeouts", "WebRTCCall"]

logger = logging.getLogger("asgi_audio_proxy.webrtc")

#: the data channel the Realtime events go on, as OpenAI names it
EVENTS_CHANNEL = "oai-events"
#: events held for a data channel that has not opened yet (the oldest are dropped beyond)
_MAX_HELD_EVENTS = 256
#: close codes the session sees when the call ends
_GONE_CLOSED, _GONE_LOST = 1000, 1006


@dataclass(frozen=True, slots=True)
class CallTimeouts:
    """How long a call may go without media: before its first audio (ICE, DTLS) and after."""

    connect_s: float = 10.0
    media_s: float = 3.0


class WebRTCCall:
    """A call's peer connection, seen by its session as a connection of frames.

    Args:
        pc: the peer connection, its remote offer not yet set.
        playout: the reply audio waiting for the track (at the session's rate).
        timeouts: how long the call may go without audio.
    """

    def __init__(self, pc: RTCPeerConnection, playout: Playout,
                 timeouts: CallTimeouts = CallTimeouts()) -> None:
        self.id = "rtc_" + uuid.uuid4().hex[:20]
        self.pc = pc
        self.playout = playout
        self.timeouts = timeouts
        self._frames: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self._channel: RTCDataChannel | None = None
        self._held: deque[str] = deque(maxlen=_MAX_HELD_EVENTS)
        self._ids = IdSource()
        self._ended: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self.track = ReplyTrack(playout, self._buffer_events)
        pc.addTrack(self.track)
        pc.on("datachannel", self._on_channel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)

    def first(self, frame: str) -> None:
        """A client event to take before anything the client sends (the offer's ``session``)."""
        self._frames.put_nowait(frame)

    def start(self) -> None:
        """Start watching for media (after the answer is made): no audio in time ends the call."""
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read(None))

    # -- ClientConnection ---------------------------------------------------------------------

    async def accept(self, subprotocol: str | None = None) -> None:
        return None  # the answer has already been sent

    async def receive(self) -> bytes | str:
        frame = await self._frames.get()
        if frame is None:
            self._frames.put_nowait(None)  # every later receive ends too
            raise ClientGone(self._ended)
        return frame

    async def send(self, message: bytes | str) -> None:
        if self._ended is not None:
            raise ClientGone(self._ended)
        if isinstance(message, bytes):
            self.playout.push(message)
        elif self._channel is not None and self._channel.readyState == "open":
            self._channel.send(message)
        else:
            self._held.append(message)

    async def close(self, code: int, reason: str = "") -> None:
        self._end(code, reason or "closed by the server")
        await self.pc.close()

    # -- the peer connection's callbacks ------------------------------------------------------

    def _on_channel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_CHANNEL or self._channel is not None:
            logger.info("%s: closing data channel %r: events go on %r", self.id, channel.label,
                        EVENTS_CHANNEL)
            channel.close()
            return
        self._channel = channel
        channel.on("message", self._on_message)
        while self._held:
            channel.send(self._held.popleft())

    def _on_message(self, message: bytes | str) -> None:
        if self._ended is None:
            self._frames.put_nowait(message)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        if self._reader is not None:
            self._reader.cancel()
        self._reader = asyncio.get_running_loop().create_task(self._read(track))

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            self._end(_GONE_LOST if state == "failed" else _GONE_CLOSED, f"connection {state}")

    def _buffer_events(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            with contextlib.suppress(ClientGone):
                self._send_event(event)

    def _send_event(self, event: dict[str, Any]) -> None:
        frame = dump({**event, "event_id": self._ids.new("event")})
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(frame)
        else:
            self._held.append(frame)

    async def _read(self, track: MediaStreamTrack | None) -> None:
        """The microphone, frame by frame; the call ends when it stops."""
        reader = MicrophoneReader(self.playout.rate_hz)
        timeout = self.timeouts.connect_s
        try:
            if track is None:
                await asyncio.sleep(timeout)  # replaced by the track's reader when it comes
                raise TimeoutError
            while self._ended is None:
                async with asyncio.timeout(timeout):
                    frame = await track.recv()
                timeout = self.timeouts.media_s
                if not isinstance(frame, AudioFrame):
                    continue
                pcm = reader.pcm(frame)
                if pcm:
                    self._frames.put_nowait(pcm)
        except TimeoutError:
            self._end(_GONE_LOST, f"no audio for {timeout:.1f} s")
        except MediaStreamError:
            self._end(_GONE_CLOSED, "the client's track ended")

    def _end(self, code: int, why: str) -> None:
        if self._ended is not None:
            return
        logger.info("%s: call over: %s", self.id, why)
        self._ended = code
        self._frames.put_nowait(None)
        self.track.stop()
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
