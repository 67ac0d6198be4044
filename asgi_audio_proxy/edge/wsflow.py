"""uvicorn's WebSocket protocol with read flow control by watermark, for the servers the proxy runs.

Owns: :class:`FlowWebSocketProtocol`, uvicorn's ``websockets-sansio`` protocol whose reading of a
connection pauses only once the app is behind, by :data:`MAX_QUEUED_MESSAGES` or
:data:`MAX_QUEUED_BYTES`, and resumes when the app has taken everything queued. uvicorn's own
pauses reading after every message and resumes it when the app takes it: two ``epoll_ctl`` system
calls and a trip through the selector per frame, and one ``recv`` per frame where a 20 ms audio
frame arrives 50 times a second. With it, the proxy took 0.79x the CPU at 100 native sessions
(``python -m benchmarks.against``; docs/deployment.md). Must not: change what the app receives,
or its order.

``serve``, ``serve --workers`` and the demo use it; an app run under uvicorn from Python can too:
``uvicorn.run(app, ws=FlowWebSocketProtocol)`` (uvicorn's command line takes only its own names).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["MAX_QUEUED_BYTES", "MAX_QUEUED_MESSAGES", "FlowWebSocketProtocol"]

#: messages received and not yet taken by the app before reading pauses: a frame's worth of
#: scheduling slack for a busy loop, not a buffer (the session has its own limits)
MAX_QUEUED_MESSAGES = 8
#: bytes received and not yet taken before reading pauses: one large frame pauses at once, as
#: uvicorn's own protocol does
MAX_QUEUED_BYTES = 64 * 1024


class FlowWebSocketProtocol(WebSocketsSansIOProtocol):
    """``websockets-sansio`` with reading paused at a high watermark, not after every message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sizes: deque[int] = deque()  # of the received messages queued, in order
        self._queued_bytes = 0

    def send_receive_event_to_app(self) -> None:
        size = sum(len(frame) for frame in self.frames)
        queued = self.queue.qsize()
        was_paused = self.read_paused
        # the parent pauses reading after queueing unless reading is paused already: say it is
        self.read_paused = True
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = was_paused
        if self.queue.qsize() == queued:  # not queued (the app had closed, or bad UTF-8)
            return
        self._sizes.append(size)
        self._queued_bytes += size
        if not was_paused and (self.queue.qsize() >= MAX_QUEUED_MESSAGES
                               or self._queued_bytes >= MAX_QUEUED_BYTES):
            self.read_paused = True
            self.transport.pause_reading()

    async def receive(self) -> Any:  # the parent's ASGIReceiveEvent
        message = await super().receive()  # resumes reading once the queue is empty
        if message["type"] == "websocket.receive" and self._sizes:
            self._queued_bytes -= self._sizes.popleft()
        return message
