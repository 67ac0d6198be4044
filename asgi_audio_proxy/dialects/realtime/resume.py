"""Resuming a Realtime session after a cut: an extension a client asks for, never the default.

Owns: :class:`ResumableRealtimeDialect`, the Realtime dialect with the words a
:class:`~asgi_audio_proxy.session.resumable.ResumeWire` needs: the token event, the
``session.resumed`` answer, the refusal, and the silence that stands for the client's audio
while it is away. Must not: await, touch a socket, or decide who may resume (the edge does).

A stock SDK validates every server event against OpenAI's types, and a strict one rejects a
type it does not know; so the two events below go only to a client that connected with
``?resumable=1`` (or ``?resume=<token>``), each named ``session.*`` so that a tolerant SDK files
it with the session's events:

    session.resumable   {"resume_token": ...}                 once the session is ready
    session.resumed     {"session": {...}, "resume_token": ...}  the first event of a resume

A resume is ``?resume=<token>&last_event_id=<the event_id of the last event read>``: the
events sent after that one are sent again after ``session.resumed`` (a cut loses what was in
flight), then what came while the client was away. The refusal of a resume is a plain
``error`` (code ``resume_failed``) then close 1008, the shape every SDK knows.
"""

from __future__ import annotations

import base64
import json

from ...events import Ready, ServerEvent
from ..base import Frame
from . import session_config as sc
from .dialect import RealtimeDialect
from .wire import dump, error_payload

__all__ = ["RESUMABLE_PARAM", "ResumableRealtimeDialect"]

#: the query parameter by which a client asks for resume tokens (``?resumable=1``)
RESUMABLE_PARAM = "resumable"
#: the byte of digital silence in each input format (G.711's zero level is not a zero byte)
_SILENT_BYTE = {"audio/pcm": b"\x00\x00", "audio/pcmu": b"\xff", "audio/pcma": b"\xd5"}


class ResumableRealtimeDialect(RealtimeDialect):
    """The Realtime dialect for a client that asked to resume after a cut.

    Its text frames carry the reply audio as base64 in JSON, so the buffer kept for a client
    away counts three audio bytes for every four characters.
    """

    text_audio_ratio = 0.75
    numbers_events = True  # each event's event_id: a resume names the last it read

    def is_event(self, frame: Frame, event_id: str) -> bool:
        """Whether ``frame`` is the event ``event_id`` names (a resume's ``last_event_id``)."""
        if not isinstance(frame, str) or event_id not in frame:
            return False  # most frames are ruled out without parsing them
        try:
            event = json.loads(frame)
        except ValueError:
            return False
        return isinstance(event, dict) and event.get("event_id") == event_id

    def send(self, event: ServerEvent) -> list[Frame]:
        frames = super().send(event)
        if isinstance(event, Ready) and event.resume_token is not None:
            frames += self._extension({"type": "session.resumable", "resume_token": event.resume_token})
        return frames

    def resumed(self, session_id: str, token: str) -> list[Frame]:
        """The first event on a resumed connection: the session as it stands (its id the one
        ``session.created`` gave) and the token for the next resume; ``session_id`` is the
        proxy's, for its logs only."""
        return self._extension({"type": "session.resumed",
                                "session": sc.render(self._options.session, self.protocol),
                                "resume_token": token})

    def resume_failed(self, message: str) -> list[Frame]:
        """A refused resume: an ``error`` alone (no ``session.created``: there is no session)."""
        error = error_payload(message, code="resume_failed")
        return [dump({"type": "error", "event_id": self._ids.new("event"), "error": error})]

    def silence(self, duration_s: float) -> Frame:
        """What stands for the client's audio while it is away: an append of silence in the
        session's input format, so the model's turn logic goes on as if it listened."""
        fmt = sc.audio_format(self._options.session, "input")
        rate = sc.FORMAT_RATES_HZ[fmt]
        silent = _SILENT_BYTE[fmt] * round(duration_s * rate)
        return dump({"type": "input_audio_buffer.append", "audio": base64.b64encode(silent).decode()})

    def _extension(self, event: dict[str, object]) -> list[Frame]:
        """An event of this proxy's, numbered as the rest (``session.created`` first, if not yet
        sent); the same name in GA and beta."""
        frames = self._frames([]) if not self._has_opened else []
        return [*frames, dump({**event, "event_id": self._ids.new("event")})]
