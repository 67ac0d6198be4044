"""Bad input and hostile clients: what one client does, and the answer the README documents.

Each case is an async function ``(url, recorder, server, checks) -> observed`` that connects
one offending client to the proxy at ``url`` and checks what it gets; the scenario runner in
:mod:`tests.faults.scenarios` runs a well-behaved bystander beside it on the same proxy.

A bad frame that costs only an error event is followed by a *marker*: an unknown control
type whose answer (one ``bad_payload`` event naming it) is known, so every event the earlier
frames caused has been read once the marker's answer arrives, with no waiting on silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from asgi_audio_proxy.dialects.native_client import (
    AudioMessage,
    ErrorMessage,
    ProxyMessage,
    ReadyMessage,
    decode_message,
)
from asgi_audio_proxy.simulator.recorder import SimulatorRecorder
from tests.clients import at_real_time
from tests.faults.observe import Checks, heard, opened, read_to_close
from tests.signals import silence, tone
from tests.timing import within

__all__ = ["CLIENT_CASES", "ClientCase"]

CaseRun = Callable[[str, SimulatorRecorder, str, Checks], Awaitable[str]]
#: the offender's own audio: 660 Hz, so it cannot be mistaken for the bystander's 440 Hz
AUDIO = tone(660, 0.4)
MARKER = json.dumps({"type": "marker"})
BAD = ("bad_payload", 1007)


@dataclass(frozen=True)
class ClientCase:
    expected: str
    run: CaseRun
    config: dict[str, Any] = field(default_factory=dict)
    simulator: dict[str, Any] = field(default_factory=dict)


def frames_of(pcm: bytes, size: int) -> list[bytes]:
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


async def goes_on(url: str, recorder: SimulatorRecorder, checks: Checks, bad: Iterable[bytes | str],
                  expected_errors: list[tuple[str, int]], audio: Iterable[bytes] = (AUDIO,),
                  *, before_ready: bool = False) -> str:
    """Send ``bad`` then ``audio``: each bad frame costs its error event, and the session goes on."""
    audio = list(audio)
    async with connect(url, open_timeout=within(5)) as ws:
        if not before_ready:
            await opened(ws, checks)
        for frame in [*bad, *audio, MARKER]:
            await ws.send(frame)
        events: list[ProxyMessage] = []
        async with asyncio.timeout(within(5)):
            while not events or not _answers_marker(events[-1]):
                message = decode_message(await ws.recv())
                if not isinstance(message, AudioMessage):
                    events.append(message)
        if before_ready:
            first = events.pop(0)
            checks.that("first event is ready", isinstance(first, ReadyMessage), first)
        got = [(e.kind, e.code) for e in events[:-1] if isinstance(e, ErrorMessage)]
        checks.equal("error events", got, expected_errors)
        checks.equal("other events", [e for e in events[:-1] if not isinstance(e, ErrorMessage)], [])
        pcm = b"".join(audio)
        try:
            await recorder.wait_for(lambda r: heard(r, pcm), timeout=within(5))
        except TimeoutError:
            checks.failures.append("the upstream did not get the audio sent after it, intact")
    # the session went on: it closes when we do, with our code
    checks.equal("client's own close", (ws.close_code, ws.close_reason), (1000, ""))
    counts = ", ".join(f"{k} {c} x{got.count((k, c))}" for k, c in dict.fromkeys(got)) or "no error event"
    return f"{counts}; session went on, {len(pcm)} B reached the upstream intact"


def _answers_marker(message: ProxyMessage) -> bool:
    return isinstance(message, ErrorMessage) and "'marker'" in message.message


async def ends(url: str, checks: Checks, act: Callable[[ClientConnection], Awaitable[None]],
               expected_errors: list[tuple[str, int]], close_code: int | None,
               per_message: Callable[[], Awaitable[None]] | None = None, **connect_options: Any) -> str:
    """Do ``act`` while reading: the proxy answers with ``expected_errors`` and ``close_code``."""
    async with connect(url, open_timeout=within(5), **connect_options) as ws:
        await opened(ws, checks)

        async def acting() -> None:
            with contextlib.suppress(ConnectionClosed):  # the proxy closes while we act
                await act(ws)

        actor = asyncio.create_task(acting())
        transcript = await read_to_close(ws, timeout_s=10, per_message=per_message)
        await actor
    errors = transcript.errors
    if per_message is not None:  # a slow reader may see only the last of repeated reports
        errors = list(dict.fromkeys(errors))
    checks.equal("error events", errors, expected_errors)
    checks.equal("close code", transcript.close_code, close_code)
    return transcript.describe()


# -- the cases --------------------------------------------------------------------------------------

async def odd_length_frames(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    return await goes_on(url, recorder, checks, [], [], frames_of(tone(660, 0.6), 333))


async def empty_frames(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    frames = [piece for frame in frames_of(AUDIO, 1000) for piece in (b"", frame)]
    return await goes_on(url, recorder, checks, [], [], [*frames, b""])


async def oversized_frame(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    async def act(ws: ClientConnection) -> None:
        await ws.send(AUDIO)
        await ws.send(bytes(100_000))

    return await ends(url, checks, act, [("message_too_big", 1009)], 1009)


async def invalid_utf8(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    async def act(ws: ClientConnection) -> None:
        await ws.send(b"\xff\xfe{}", text=True)  # a text frame that is not UTF-8

    # the ASGI server, not the proxy, sees this: uvicorn closes 1007 itself; hypercorn (wsproto)
    # drops the connection with no close frame. Either way the session ends and frees its upstream.
    return await ends(url, checks, act, [], 1007 if server == "uvicorn" else None)


async def non_json_text(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    return await goes_on(url, recorder, checks, ["hello, proxy", ""], [BAD, BAD])


WRONG_SHAPES = ["[1, 2]", '"stop"', "null", '{"type": 5}', '{"kind": "stop"}',
                '{"type": "config", "vadThreshold": "high"}', '{"type": "config", "vadThreshold": 7}',
                '{"type": "config", "notAnOption": 1}']


async def wrong_shape(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    return await goes_on(url, recorder, checks, WRONG_SHAPES, [BAD] * len(WRONG_SHAPES))


async def unknown_control(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    return await goes_on(url, recorder, checks, ['{"type": "dance"}'], [BAD])


async def oversized_text(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    return await goes_on(url, recorder, checks, [json.dumps({"type": "stop", "pad": "x" * 9000})], [BAD])


async def audio_before_ready(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    return await goes_on(url, recorder, checks, [], [], frames_of(tone(660, 1.0), 640),
                         before_ready=True)


async def small_frame_flood(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    return await goes_on(url, recorder, checks, [], [], frames_of(tone(660, 0.6), 4))


async def control_flood(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    async def act(ws: ClientConnection) -> None:
        for _ in range(50):
            await ws.send('{"type": "stop"}')

    return await ends(url, checks, act, [("policy_violation", 1008)], 1008)


async def too_fast(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    async def act(ws: ClientConnection) -> None:
        for frame in frames_of(tone(660, 4.0), 3200):
            await ws.send(frame)

    return await ends(url, checks, act, [("policy_violation", 1008)], 1008)


async def slow_client(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    """A client that stops reading mid-reply, and reads again only once the proxy gave up on it.

    The proxy giving up is visible upstream: it cuts the reply and sends ``/stop``. Until then
    the reply backs up through the kernel into the proxy, which drops the oldest audio, reports
    it, and ends the session once the client has lost ``max_pending_reply_bytes`` more.
    """
    # a thin link, and max_queue=1 (the client library stops reading the socket once a
    # message waits): the reply backs up into the proxy instead of into the kernel
    with small_receive_buffer(url) as sock:
        async with connect(url, open_timeout=within(5), sock=sock, max_queue=1,
                           compression=None) as ws:  # reply audio padded with silence deflates to nothing
            await opened(ws, checks)
            for frame in frames_of(tone(660, 0.8) + silence(1.0), 3200):
                await ws.send(frame)  # at once: the proxy paces it upstream
            try:
                await recorder.wait_for(lambda r: r.stops >= 1, timeout=within(10))
            except TimeoutError:
                checks.failures.append("the proxy never gave up on the stalled client")
            transcript = await read_to_close(ws, timeout_s=5)
    errors = list(dict.fromkeys(transcript.errors))
    checks.equal("error events", errors, [("reply_audio_dropped", 1013), ("client_too_slow", 1013)])
    checks.equal("close code", transcript.close_code, 1013)
    return transcript.describe()


@contextlib.contextmanager
def small_receive_buffer(url: str) -> Iterator[socket.socket]:
    """A socket to ``url``'s port that behaves like a thin link, set before connecting.

    A fixed 8 KiB receive buffer (no autotuning), and a 1 400-byte segment size: loopback's
    64 KiB segments would let the proxy's kernel buffer over a megabyte for this client.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400)
        sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/"))))
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()


async def idle(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    async def act(ws: ClientConnection) -> None:
        return None  # sends nothing at all

    observed = await ends(url, checks, act, [("idle_timeout", 1000)], 1000)
    return observed


async def session_length(url: str, recorder: SimulatorRecorder, server: str, checks: Checks) -> str:
    async def act(ws: ClientConnection) -> None:
        start, frame = asyncio.get_running_loop().time(), silence(0.02)
        for i in itertools.count(1):  # a live client's silence, until the proxy ends the session
            await ws.send(frame)
            await at_real_time(start, i * 0.02)

    return await ends(url, checks, act, [("limit_exceeded", 1013)], 1013)


CLIENT_CASES: dict[str, ClientCase] = {
    "odd_length_frames": ClientCase("no error; every byte upstream, in order", odd_length_frames),
    "empty_frames": ClientCase("no error; every byte upstream, in order", empty_frames),
    "oversized_frame": ClientCase("message_too_big 1009; close 1009", oversized_frame,
                                  {"max_message_bytes": 65_536}),
    "invalid_utf8": ClientCase("the server closes: 1007 (uvicorn), TCP drop (hypercorn)", invalid_utf8),
    "non_json_text": ClientCase("bad_payload 1007 each; session goes on", non_json_text),
    "wrong_shape": ClientCase("bad_payload 1007 each; session goes on", wrong_shape),
    "unknown_control": ClientCase("bad_payload 1007; session goes on", unknown_control),
    "oversized_text": ClientCase("bad_payload 1007; session goes on", oversized_text),
    "audio_before_ready": ClientCase("no error; the audio reaches the upstream", audio_before_ready),
    "small_frame_flood": ClientCase("no error; every byte upstream, in order", small_frame_flood),
    "control_flood": ClientCase("policy_violation 1008; close 1008", control_flood),
    "too_fast": ClientCase("policy_violation 1008; close 1008", too_fast, {"max_lead_s": 1.5}),
    "slow_client": ClientCase("reply_audio_dropped 1013, client_too_slow 1013; close 1013",
                              slow_client, {"max_pending_reply_bytes": 40_000},
                              {"reply_chunks": 40}),
    # the bystander streams all along, yet on a busy machine its frames may come late: a
    # margin that scales with the machine, as the bystander's own deadline does
    "idle": ClientCase("idle_timeout 1000; close 1000", idle, {"idle_timeout_s": within(3.0)}),
    # longer than the bystander's whole round trip (its 1.8 s turn, then the reply), on any machine
    "session_length": ClientCase("limit_exceeded 1013; close 1013", session_length,
                                 # longer than the bystander's round trip beside it, which
                                 # the limit ends too
                                 {"max_session_s": within(7)}),
}
