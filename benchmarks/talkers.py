"""Native sessions that take turns at real-time pace, many at once, in this process.

Owns: N clients of the proxy's native protocol (binary PCM16 16 kHz, JSON events), each saying
a 1.2 s utterance in 20 ms frames at real time, then silence until its reply's ``turn_end``
(the upstream's VAD ends the turn), then :data:`QUIET_S` of silence, and again, for as long as
asked; each frame's lateness against its schedule; and the turns, read through the protocol's
client half (:mod:`~asgi_audio_proxy.dialects.native_client`) into the command-line client's
:class:`~asgi_audio_proxy.client.turns.TurnTracker`. Session *g* of *N* sends
*g/N* of a frame after session 0, as independent clients would, and says its first utterance
*g/N* of a turn later (of half the window, if shorter), so turns end all through the window
rather than together.
Runs as a process of its own, as the load generator does: ``python -m benchmarks.talkers URL
--sessions N --warmup S --window S --cpu-of PID`` prints the figures as one JSON line, the CPU
of process ``PID`` read at the window's edges; so nothing the benchmark's own process holds or
does (a large heap's collection, other work) delays a frame. Must not: start or stop processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import psutil  # type: ignore[import-untyped]  # no stubs in the environment
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.client.audio import generated_utterance, is_loud, split_frames
from asgi_audio_proxy.client.turns import TurnResult, TurnTracker
from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    BadProxyMessage,
    ErrorMessage,
    QueuedMessage,
    ReadyMessage,
    TextMessage,
    TurnEndMessage,
    decode_message,
)

from .load import summary
from .marker import FRAME_BYTES
from .procs import cpu_seconds

__all__ = ["QUIET_S", "TURN_TIMEOUT_S", "UTTERANCE_S", "TalkFigures", "main", "run_talkers"]

#: the load's frame (benchmarks.loadgen), not the command-line client's 50 ms one
FRAME_S = 0.02

#: one utterance: the generated speech-like burst the command-line client says
UTTERANCE_S = 1.2
#: silence after a reply's turn_end, before the next utterance: longer than the simulator's echo
#: guard after a 4-chunk reply (2.5 s past the reply plus 0.68 s per chunk, from its start)
QUIET_S = 4.0
#: an utterance with no turn_end this long after it counts as unanswered
TURN_TIMEOUT_S = 10.0
#: what one turn takes with the benchmark's simulator: speech, the VAD's end, the reply, quiet
_TURN_CYCLE_S = UTTERANCE_S + 1.0 + 1.6 + QUIET_S
_OPEN_TIMEOUT_S = 30.0
_CONNECT_CONCURRENCY = 16
#: after the window, the sessions go on this long, so their closing falls outside it
_TAIL_S = 0.5
_START_MARGIN_S = 0.3

_UTTERANCE = [(frame, is_loud(frame))
              for frame in split_frames(generated_utterance(UTTERANCE_S), FRAME_BYTES)]
_SILENCE = bytes(FRAME_BYTES)


@dataclass
class TalkFigures:
    """What the sessions did (times in ms, the meter in its own unit).

    Attributes:
        turns_in_window: turns that ended ``complete`` with reply audio inside the window.
        turns_by_session: the same, session by session.
        unanswered_turns: turns that ended without reply audio, or not at all in time.
        metered: the meter's reading at the window's end minus at its start.
    """

    sessions: int
    warmup_s: float
    window_s: float
    connected: int = 0
    connect_failures: list[str] = field(default_factory=list)
    turns_in_window: int = 0
    turns_by_session: list[int] = field(default_factory=list)
    turns_total: int = 0
    unanswered_turns: int = 0
    reply_audio_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    unexpected_closes: list[int | None] = field(default_factory=list)
    late_ms: dict[str, float] = field(default_factory=dict)
    metered: float = 0.0


class _Clock:
    """One session's 20 ms frame schedule, from ``first`` until ``stop``."""

    def __init__(self, first: float, stop: float) -> None:
        self.due = first
        self.stop = stop

    async def next_frame(self) -> bool:
        """Wait for the next frame's time; ``False`` once the schedule is over."""
        if self.due >= self.stop:
            return False
        wait = self.due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        return True


class _Talker:
    """One session: a sender that takes turns and a reader that follows them."""

    def __init__(self, index: int, ws: ClientConnection, clock: _Clock, window: tuple[float, float],
                 figures: TalkFigures, late_s: list[float]) -> None:
        self.index = index
        self.ws = ws
        self.clock = clock
        self.window = window
        self.figures = figures
        self.late_s = late_s
        self.tracker = TurnTracker()
        self.closing = False

    async def talk(self, first_turn_after_s: float) -> None:
        """Turns until the schedule ends, then close."""
        try:
            if await self._silence(first_turn_after_s):
                while await self._turn() and await self._silence(QUIET_S):
                    pass
        finally:
            self.closing = True
            await self.ws.close()  # bounded by the connection's close_timeout

    async def _turn(self) -> bool:
        self.tracker.utterance_started()
        for frame, loud in _UTTERANCE:
            if not await self._send(frame, loud):
                return False
        said_at = self.clock.due
        self.tracker.utterance_ended(time.perf_counter())
        while self.tracker.owes_reply:
            if self.clock.due - said_at > TURN_TIMEOUT_S:
                self._ended(self.tracker.turn_ended("timeout"), time.perf_counter())
                break
            if not await self._send(_SILENCE, False):
                return False
        return True

    async def _silence(self, seconds: float) -> bool:
        for _ in range(round(seconds / FRAME_S)):
            if not await self._send(_SILENCE, False):
                return False
        return True

    async def _send(self, frame: bytes, loud: bool) -> bool:
        if not await self.clock.next_frame():
            return False
        try:
            await self.ws.send(frame)
        except ConnectionClosed:
            return False  # the reader has the close code
        now = time.perf_counter()
        self.late_s.append(now - self.clock.due)
        self.clock.due += FRAME_S
        self.tracker.frame_sent(now, len(frame), loud=loud)
        return True

    async def read(self) -> None:
        """Everything the proxy sends, into the turn tracker, until the connection closes."""
        try:
            async for frame in self.ws:
                now = time.perf_counter()
                match decode_message(frame):
                    case AudioMessage(pcm=pcm):
                        self.tracker.reply_audio_received(now, len(pcm))
                    case TextMessage(text=text):
                        self.tracker.reply_text_received(text)
                    case TurnEndMessage(reason=reason):
                        self._ended(self.tracker.turn_ended(reason), now)
                    case ErrorMessage(message=message):
                        self.figures.errors.append(message[:200])
        except BadProxyMessage as exc:  # a message the protocol does not have: the run is invalid
            self.figures.errors.append(str(exc)[:200])
        except ConnectionClosed as exc:
            if not self.closing:
                self.figures.unexpected_closes.append(exc.rcvd.code if exc.rcvd else None)
            return
        if not self.closing and self.ws.close_code != 1000:  # 1000 and 1001 end the loop quietly
            self.figures.unexpected_closes.append(self.ws.close_code)

    def _ended(self, result: TurnResult, now: float) -> None:
        self.figures.turns_total += 1
        self.figures.reply_audio_s += result.reply_audio_s
        if not result.got_reply or result.reason != "complete":
            self.figures.unanswered_turns += 1
        elif self.window[0] <= now < self.window[1]:
            self.figures.turns_in_window += 1
            self.figures.turns_by_session[self.index] += 1


async def _open(url: str, index: int, gate: asyncio.Semaphore) -> ClientConnection | str:
    """A session that the proxy said ``ready`` to (after ``queued``, if it queued), or why not."""
    async with gate:
        ws = None
        try:
            async with asyncio.timeout(_OPEN_TIMEOUT_S):
                ws = await connect(url, compression=None, ping_interval=None, max_queue=None,
                                   close_timeout=2)
                while not isinstance(message := decode_message(await ws.recv()), ReadyMessage):
                    if not isinstance(message, QueuedMessage):
                        raise ValueError(f"expected ready, got {message!r:.120}")
        except (OSError, TimeoutError, ConnectionClosed, ValueError) as exc:
            if ws is not None:
                await ws.close()
            return f"session {index}: {type(exc).__name__}: {exc}"[:200]
        return ws


async def _meter_window(meter: Callable[[], float], window: tuple[float, float],
                        figures: TalkFigures) -> None:
    await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
    first = meter()
    await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
    figures.metered = meter() - first


async def run_talkers(url: str, sessions: int, *, warmup_s: float, window_s: float,
                      meter: Callable[[], float]) -> TalkFigures:
    """Open ``sessions`` sessions on ``url``, let them take turns through warm-up and window.

    Args:
        url: the proxy's native WebSocket URL.
        sessions: how many at once.
        warmup_s: seconds of turns before the window.
        window_s: seconds measured: turns that end in it are counted, ``meter`` read at its edges.
        meter: read at the window's start and end (e.g. a process's CPU seconds).
    """
    figures = TalkFigures(sessions=sessions, warmup_s=warmup_s, window_s=window_s)
    gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)
    opened = await asyncio.gather(*(_open(url, i, gate) for i in range(sessions)))
    connections = [ws for ws in opened if not isinstance(ws, str)]
    figures.connect_failures = [why for why in opened if isinstance(why, str)]
    figures.connected = len(connections)
    start = time.perf_counter() + _START_MARGIN_S
    window = (start + warmup_s, start + warmup_s + window_s)
    late_s: list[float] = []
    figures.turns_by_session = [0] * len(connections)
    # first turns spread over one turn, or half the window if that is shorter, so a short
    # window still sees several sessions' turns end
    spread_s = min(_TURN_CYCLE_S, window_s / 2)
    talkers = [_Talker(g, ws, _Clock(start + FRAME_S * g / sessions, window[1] + _TAIL_S), window,
                       figures, late_s) for g, ws in enumerate(connections)]
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_meter_window(meter, window, figures))
            for g, talker in enumerate(talkers):
                tg.create_task(talker.read())
                tg.create_task(talker.talk(spread_s * g / sessions))
    finally:
        for ws in connections:
            await ws.close()  # already closed unless a task failed
    figures.late_ms = summary([x * 1000 for x in late_s])
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.talkers",
                                     description="Native sessions taking turns; the figures as JSON.")
    parser.add_argument("url", help="the proxy's native WebSocket URL")
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--warmup", type=float, required=True, help="seconds before the window")
    parser.add_argument("--window", type=float, required=True, help="seconds measured")
    parser.add_argument("--cpu-of", type=int, required=True, metavar="PID",
                        help="the process whose CPU seconds are read at the window's edges")
    args = parser.parse_args(argv)
    process = psutil.Process(args.cpu_of)
    figures = asyncio.run(run_talkers(args.url, args.sessions, warmup_s=args.warmup,
                                      window_s=args.window, meter=lambda: cpu_seconds(process)))
    print(json.dumps(asdict(figures)), flush=True)


if __name__ == "__main__":
    main()
