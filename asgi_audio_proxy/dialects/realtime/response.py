"""One Realtime response, as the events strict clients expect, and why a reply ended.

Owns: :class:`Reply`, the ids and order of a response's events (``response.created`` →
``output_item.added`` → item added → ``content_part.added`` → deltas → audio done → transcript
done → ``content_part.done`` → ``output_item.done`` → item done → ``response.done``), in GA or
beta shape, its transcript so far; and :func:`outcome`, a neutral reply end as the status and
details of ``response.done``. Events are built in GA names without ``event_id``; the dialect
names and numbers them. Must not: keep the conversation's items or state (``reply.py`` does),
encode audio, or read a clock.
"""

from __future__ import annotations

from typing import Any, Literal

from ...events import ReplyEnded
from .wire import IdSource, Protocol

__all__ = ["Event", "Reply", "ResponseStatus", "outcome"]

Event = dict[str, Any]
ResponseStatus = Literal["completed", "cancelled", "failed", "incomplete"]


def outcome(event: ReplyEnded) -> tuple[ResponseStatus, dict[str, Any] | None]:
    """``response.done``'s status and status details for why a reply ended."""
    if event.reason == "complete":
        return "completed", None
    if event.reason == "stopped":
        why = "turn_detected" if event.stopped_by == "voice" else "client_cancelled"
        return "cancelled", {"type": "cancelled", "reason": why}
    error = {"type": "server_error", "code": "upstream_interrupted",
             "message": "The model ended the reply early."}
    return "failed", {"type": "failed", "error": error}


class Reply:
    """One response: its ids, its transcript so far, and its events."""

    def __init__(self, ids: IdSource, protocol: Protocol, *, previous_item_id: str | None,
                 text_only: bool, audio_format: Any, voice: Any, metadata: Any = None) -> None:
        self.response_id = ids.new("resp")
        self.item_id = ids.new("item")
        self._conversation_id = ids.new("conv")
        self._protocol = protocol
        self.previous_item_id = previous_item_id
        self.text_only = text_only
        self._audio_format = audio_format
        self._voice = voice
        self._metadata = metadata
        self._transcript: list[str] = []

    @property
    def transcript(self) -> str:
        return "".join(self._transcript)

    def created(self) -> Event:
        """``response.created``."""
        return {"type": "response.created", "response": self._response("in_progress", None, [])}

    def done(self, status: ResponseStatus, details: dict[str, Any] | None, output: list[Any]) -> Event:
        """``response.done``."""
        return {"type": "response.done", "response": self._response(status, details, output)}

    def opening(self) -> list[Event]:
        """``response.output_item.added`` through ``content_part.added``."""
        item = self._item("in_progress", [])
        return [
            {"type": "response.output_item.added", **self._ids(item=False), "item": item},
            {"type": "conversation.item.added", "item": item, "previous_item_id": self.previous_item_id},
            {"type": "response.content_part.added", **self._ids(), "part": self._part("")},
        ]

    def audio(self, delta: str) -> Event:
        """One ``response.output_audio.delta``."""
        return {"type": "response.output_audio.delta", **self._ids(), "delta": delta}

    def text(self, delta: str) -> Event:
        """One transcript delta (a text delta when the session is text only)."""
        self._transcript.append(delta)
        kind = "response.output_text.delta" if self.text_only else "response.output_audio_transcript.delta"
        return {"type": kind, **self._ids(), "delta": delta}

    def closing(self, status: ResponseStatus, details: dict[str, Any] | None) -> list[Event]:
        """The ``.done`` events through ``response.done``."""
        text = self.transcript
        item = self._item("completed" if status == "completed" else "incomplete", [self._content(text)])
        events: list[Event] = []
        if self.text_only:
            events.append({"type": "response.output_text.done", **self._ids(), "text": text})
        else:
            events += [{"type": "response.output_audio.done", **self._ids()},
                       {"type": "response.output_audio_transcript.done", **self._ids(), "transcript": text}]
        return [
            *events,
            {"type": "response.content_part.done", **self._ids(), "part": self._part(text)},
            {"type": "response.output_item.done", **self._ids(item=False), "item": item},
            {"type": "conversation.item.done", "item": item, "previous_item_id": self.previous_item_id},
            self.done(status, details, [item]),
        ]

    def _ids(self, *, item: bool = True) -> dict[str, Any]:
        ids: dict[str, Any] = {"response_id": self.response_id, "output_index": 0}
        if item:
            ids.update(item_id=self.item_id, content_index=0)
        return ids

    def _part(self, text: str) -> dict[str, Any]:
        # the JS SDK's schema takes a string or nothing here, never null
        return {"type": "text", "text": text} if self.text_only else {"type": "audio", "transcript": text}

    def _content(self, text: str) -> dict[str, Any]:
        if self.text_only:
            return {"type": "output_text" if self._protocol == "ga" else "text", "text": text}
        return {"type": "output_audio" if self._protocol == "ga" else "audio", "transcript": text}

    def _item(self, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": status, "content": content}

    def _response(self, status: str, details: dict[str, Any] | None, output: list[Any]) -> dict[str, Any]:
        response: dict[str, Any] = {
            "id": self.response_id, "object": "realtime.response", "status": status,
            "status_details": details, "output": output, "usage": None, "metadata": self._metadata,
            "max_output_tokens": "inf",
        }
        modalities = ["text"] if self.text_only else ["audio"]
        if self._protocol == "ga":
            response.update(conversation_id=self._conversation_id, output_modalities=modalities,
                            audio={"output": {"format": self._audio_format, "voice": self._voice}})
        else:
            response.update(modalities=["text"] if self.text_only else ["text", "audio"],
                            output_audio_format=self._audio_format, voice=self._voice)
        return response
