"""The Realtime dialect over a WebRTC call: the same events on the data channel, audio as media.

Owns: :class:`WebRTCDialect`, which wraps one
:class:`~asgi_audio_proxy.dialects.realtime.RealtimeDialect` (the very code a WebSocket client
talks to) and changes only what WebRTC changes: the microphone's audio arrives as PCM from the
call's track and is handed to the dialect as ``input_audio_buffer.append`` events; reply audio
goes to the call's track (as PCM frames for the call's :class:`~.playout.Playout`) instead of
``response.output_audio.delta`` events; a stop, ``response.cancel`` and
``output_audio_buffer.clear`` drop the audio already queued on the track.
Must not: await, touch the peer connection, or read a clock.
"""

from __future__ import annotations

import base64
import json

from ..dialects.base import Frame
from ..dialects.realtime import RealtimeDialect
from ..events import ClientEvent, ReplyAudio, ReplyEnded, ServerEvent
from .playout import Playout

__all__ = ["WebRTCDialect"]

#: reply audio deltas: over WebRTC the audio goes on the track, never on the data channel
_AUDIO_DELTAS = ('{"type":"response.output_audio.delta"', '{"type":"response.audio.delta"')
_RESPONSE_CREATED = '{"type":"response.created"'


class WebRTCDialect:
    """One call's wire format: the Realtime dialect, with its audio on the call's tracks.

    Args:
        realtime: the call's Realtime dialect (made by its factory from the request).
        playout: the call's outgoing audio, at :attr:`output_rate_hz`.
    """

    name = "webrtc"
    subprotocol: str | None = None
    #: reply audio reaches the track at most this far ahead of its playing: the session then
    #: knows what is playing (a barge-in, a cancel, a truncation act on what is heard), and a
    #: stop has little to drop
    playback_lead_ms: float | None = 200.0
    wants_speech_events = True
    binary_pcm_rate_hz: int | None = None  # the microphone's PCM becomes appends (see receive)

    def __init__(self, realtime: RealtimeDialect, playout: Playout) -> None:
        self.realtime = realtime
        self.playout = playout

    @property
    def output_rate_hz(self) -> int:
        """The track's rate, whatever format the session names (it has no meaning over WebRTC)."""
        return self.playout.rate_hz

    def receive(self, frame: Frame) -> list[ClientEvent]:
        """A data channel event (text), or the microphone's PCM16 at the track's rate (bytes).

        Raises:
            RealtimeRequestError: an event the Realtime API would answer with an ``error``.
        """
        if isinstance(frame, bytes):
            audio = base64.b64encode(frame).decode("ascii")
            return self.realtime.receive('{"type":"input_audio_buffer.append","audio":"' + audio + '"}')
        kind = _event_type(frame)
        if kind == "output_audio_buffer.clear":
            self.playout.clear()
            return []
        if kind == "session.update":
            frame = _without_formats(frame)
        events = self.realtime.receive(frame)
        if kind == "response.cancel":
            self.playout.clear()  # what the track has queued must not play either
        return events

    def send(self, event: ServerEvent) -> list[Frame]:
        """Encode one event: text frames for the data channel, PCM (bytes) for the track."""
        frames = self.realtime.send(event)
        if isinstance(event, ReplyAudio):
            frames = [frame for frame in frames
                      if not (isinstance(frame, str) and frame.startswith(_AUDIO_DELTAS))]
        for frame in frames:
            if isinstance(frame, str) and frame.startswith(_RESPONSE_CREATED):
                self.playout.response(json.loads(frame)["response"]["id"])
        if isinstance(event, ReplyAudio) and event.pcm:
            frames.append(event.pcm)
        elif isinstance(event, ReplyEnded):
            if event.reason == "stopped":
                self.playout.clear()
            else:
                self.playout.end()
        return frames


#: the events this wrapper looks into (none is an append: their audio is never parsed twice)
_WATCHED = ("output_audio_buffer.clear", "response.cancel", "session.update")
#: an event longer than this is left to the dialect (which refuses what is over its limit)
_MAX_WATCHED_CHARS = 256 * 1024


def _without_formats(frame: str) -> str:
    """A ``session.update`` without its audio formats: over WebRTC the audio is Opus on the
    tracks, and the microphone reaches the dialect as PCM at 24 kHz whatever it names."""
    event = json.loads(frame)
    session = event.get("session")
    if isinstance(session, dict):
        for name in ("input_audio_format", "output_audio_format"):  # beta
            session.pop(name, None)
        audio = session.get("audio")
        if isinstance(audio, dict):
            for side in ("input", "output"):
                if isinstance(audio.get(side), dict):
                    audio[side].pop("format", None)
    return json.dumps(event)


def _event_type(frame: str) -> str | None:
    """The ``type`` of an event this wrapper acts on (``None`` for anything else, or anything
    that is not JSON: the dialect judges those)."""
    if len(frame) > _MAX_WATCHED_CHARS or not any(name in frame for name in _WATCHED):
        return None
    try:
        event = json.loads(frame)
    except ValueError:
        return None
    kind = event.get("type") if isinstance(event, dict) else None
    return kind if isinstance(kind, str) else None
