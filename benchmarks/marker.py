"""The marker the load generator writes into each 200 ms message, and reads back upstream.

Owns: four int16 samples at the start of every message (frame ``10 m`` of a session's 20 ms
frames): a magic value, the session index, the message index and a "reply now" flag. Quiet
enough (at most -30 dBFS, on four samples of 3 200) that any VAD reads the message as silence.

Audio that is resampled or G.711-coded on its way (the Realtime and Twilio dialects) cannot
carry those samples through. Such a session declares itself instead: its conversation options
carry :func:`declared_prompt` (the assistant prompt, which reaches the upstream's
``/init_options`` with the conversation's uid), and the upstream numbers that uid's messages
in the order they arrive. Must not: do I/O.
"""

from __future__ import annotations

import struct

__all__ = ["FRAMES_PER_MESSAGE", "FRAME_BYTES", "declared_prompt", "marked_frame", "read_declared",
           "read_marker"]

#: one client frame: 20 ms of 16 kHz PCM16
FRAME_BYTES = 640
#: 200 ms upstream message = 10 client frames
FRAMES_PER_MESSAGE = 10
_MAGIC = 77
_MARKER = struct.Struct("<hhhh")
_SILENT_FRAME = bytes(FRAME_BYTES)
_DECLARED = "load session "


def marked_frame(session: int, message: int, *, wants_reply: bool = False) -> bytes:
    """The first frame of ``message``: silence with the marker in front."""
    if not (0 <= session < 32768 and 0 <= message < 32768):
        raise ValueError(f"marker out of range: session {session}, message {message}")
    return _MARKER.pack(_MAGIC, session, message, int(wants_reply)) + _SILENT_FRAME[_MARKER.size :]


def read_marker(pcm: bytes | bytearray | memoryview) -> tuple[int, int, bool] | None:
    """``(session, message, wants_reply)`` from a message's first bytes, or ``None``."""
    if len(pcm) < _MARKER.size:
        return None
    magic, session, message, flag = _MARKER.unpack_from(pcm)
    return (session, message, bool(flag)) if magic == _MAGIC else None


def declared_prompt(session: int) -> str:
    """The assistant prompt a session that cannot carry the marker declares itself with."""
    return f"{_DECLARED}{session}"


def read_declared(prompt: object) -> int | None:
    """The session index in a :func:`declared_prompt`, or ``None``."""
    if isinstance(prompt, str) and prompt.startswith(_DECLARED) and prompt[len(_DECLARED):].isdigit():
        return int(prompt[len(_DECLARED):])
    return None
