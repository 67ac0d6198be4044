"""The server events that tell one simulated response: its opening, each 1 s unit, its end.

Owns: the events of a MiniCPM-o 4.5 duplex response in the order the server sends them: the
opening (``response.created`` -> item added and created -> ``output_item.added`` ->
``content_part.added`` -> ``response.speak``), one unit (``response.output_audio.delta``, 24 kHz
PCM16 with its metadata and playback ledger, then its transcript delta), and the end
(``*.done``, ``response.done`` with its status and reason, ``rate_limits.updated``), each from
the :class:`~.replies.Reply` as it stands. Must not: decide when a response opens, moves on or
ends, or change the reply (``conversation.py`` does), or know about sockets.
"""

from __future__ import annotations

import base64
from typing import Any

from asgi_audio_proxy.simulator.vllm_duplex.replies import Reply, unit_audio
from asgi_audio_proxy.simulator.vllm_duplex.wire import OUTPUT_RATE_HZ, UNIT_MS, event

__all__ = ["closing", "opening", "unit"]


def _ids(reply: Reply) -> dict[str, Any]:
    return {"response_id": reply.response_id, "item_id": reply.item_id, "output_index": 0,
            "content_index": 0}


def opening(reply: Reply, session_id: str, epoch: int) -> list[dict[str, Any]]:
    """The events that open ``reply``, the session's ``reply.turn``-th response."""
    rid, iid = reply.response_id, reply.item_id
    item = {"id": iid, "object": "realtime.item", "type": "message", "role": "assistant",
            "status": "in_progress", "content": []}
    duplex = {"type": "response.created", "session_id": session_id, "response_id": rid,
              "epoch": epoch, "turn_id": reply.turn}
    return [
        event("response.created", response_id=rid,
              response={"id": rid, "object": "realtime.response", "status": "in_progress",
                        "status_details": None, "output": [], "modalities": ["audio", "text"],
                        "metadata": {"duplex_event": duplex}}),
        event("conversation.item.added", previous_item_id=None, item=item),
        event("conversation.item.created", previous_item_id=None, item=item),
        event("response.output_item.added", response_id=rid, output_index=0, item=item),
        event("response.content_part.added", **_ids(reply), part={"type": "audio", "transcript": ""}),
        event("response.speak", **_ids(reply), metadata={"session_id": session_id,
                                                         "epoch": epoch, "model_speak": True}),
    ]


def unit(reply: Reply, index: int, session_id: str, epoch: int) -> list[dict[str, Any]]:
    """The ``index``-th 1 s unit of ``reply`` (already counted in ``reply.sent_units``): its
    audio delta, then its transcript delta."""
    last = index + 1 == len(reply.parts)
    metadata = {"session_id": session_id, "epoch": epoch, "model_speak": True,
                "end_of_turn": last, "audio_duration_ms": UNIT_MS,
                "audio_text_marks": [{"text_chars": len(reply.parts[index]), "audio_end_ms": UNIT_MS}],
                "playback": {"generated_ms": reply.generated_ms, "sent_ms": reply.generated_ms,
                             "played_ms": reply.played_ms, "committed_ms": reply.played_ms}}
    pcm = unit_audio(reply, index)
    return [event("response.output_audio.delta", **_ids(reply), delta=base64.b64encode(pcm).decode("ascii"),
                  format="pcm16", sample_rate_hz=OUTPUT_RATE_HZ, metadata=metadata),
            event("response.output_audio_transcript.delta", **_ids(reply), delta=reply.parts[index])]


def closing(reply: Reply, session_id: str, epoch: int, reason: str | None) -> list[dict[str, Any]]:
    """The events that end ``reply`` as ``reply.status`` (``cancelled`` for ``reason``)."""
    status = reply.status
    content = [{"type": "output_audio", "transcript": reply.transcript}]
    item = {"id": reply.item_id, "object": "realtime.item", "type": "message", "role": "assistant",
            "status": status, "content": content}
    details = None if reason is None else {"type": "cancelled", "reason": reason}
    return [
        event("response.output_audio.done", **_ids(reply)),
        event("response.output_audio_transcript.done", **_ids(reply), transcript=reply.transcript),
        event("response.content_part.done", **_ids(reply),
              part={"type": "audio", "transcript": reply.transcript}),
        event("response.output_item.done", response_id=reply.response_id, output_index=0, item=item),
        event("conversation.item.done", previous_item_id=None, item=item),
        event("response.done", response_id=reply.response_id,
              response={"id": reply.response_id, "object": "realtime.response", "status": status,
                        "status_details": details, "output": [item],
                        "metadata": {"type": "response.done", "session_id": session_id,
                                     "response_id": reply.response_id, "epoch": epoch,
                                     "playback": {"generated_ms": reply.generated_ms,
                                                  "played_ms": reply.played_ms}}}),
        event("rate_limits.updated", rate_limits=[]),
    ]
