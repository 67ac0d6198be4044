"""What the docs' tests check a running block with, from inside its sandbox.

``python -m tests.docs_probe <check> URL [options] [+ <check> URL [options]]...`` runs checks,
one after the other, against a server a doc block started in the sandbox
(``tests/docs_sandbox.py``; the test process cannot reach that network itself), prints what
each saw as one JSON line, and exits 0, or 1 with the reason (one process for a handler's
checks: starting Python is most of a check's cost):

- ``ws URL``: a WebSocket handshake; prints the HTTP status of a refusal, or the first message
  after any ``queued`` (``ready`` on the native path, ``session.created`` on the Realtime one;
  none with ``--handshake-only``). ``--header``,
  ``--subprotocol`` and ``--origin`` shape the handshake.
- ``http URL``: a GET (``--post k=v`` makes it a form POST); prints status, content type and body.
- ``json8k URL``: one turn in the architecture page's example dialect: base64 PCM16 8 kHz in,
  until its ``done`` event.
- ``simulators ADDRESS...``: not a check: the upstream simulator on each ``host:port`` of the
  sandbox (the docs' ``gpu0:32550``...), in one process, until it is stopped; prints a line
  per address once all listen.
- ``twilio URL``: one Twilio call (``tests/dialects/twilio_peer.py``): a second of tone, then
  quiet until reply media and a mark come, or the proxy closes the call; ``--param`` sets the
  ``start`` message's custom parameters.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.http_clients import http_client
from tests.timing import within

__all__ = ["main"]


async def ws_check(args: argparse.Namespace) -> dict[str, Any]:
    headers = dict(h.split(":", 1) for h in args.header)
    if args.origin:
        headers["Origin"] = args.origin
    try:
        async with connect(args.url, additional_headers=headers, subprotocols=args.subprotocol or None,
                           open_timeout=within(10)) as ws, asyncio.timeout(within(10)):
            if args.handshake_only:  # Twilio's side speaks first: the proxy sends nothing
                return {"status": 101}
            while True:  # a session before ours may still be ending: we wait our turn
                first = json.loads(await ws.recv())
                if first.get("type") != "queued":
                    break
    except InvalidStatus as refused:
        return {"status": refused.response.status_code}
    return {"status": 101, "first": first}


async def http_check(args: argparse.Namespace) -> dict[str, Any]:
    headers = dict(h.split(":", 1) for h in args.header)
    async with http_client(trust_env=False, timeout=within(10)) as client:
        if args.post is None:
            response = await client.get(args.url, headers=headers)
        else:
            form = dict(field.split("=", 1) for field in args.post)
            response = await client.post(args.url, data=form, headers=headers)
    return {"status": response.status_code, "type": response.headers.get("content-type"),
            "body": response.text}


async def json8k_check(args: argparse.Namespace) -> dict[str, Any]:
    from tests.clients import at_real_time
    from tests.signals import silence, tone

    pcm = tone(440.0, 1.0, rate_hz=8_000) + silence(1.5, rate_hz=8_000)
    events: list[str] = []
    audio_bytes = 0
    async with connect(args.url, open_timeout=within(10)) as ws:
        async def speak() -> None:
            start = asyncio.get_running_loop().time()
            for i in range(0, len(pcm), 320):  # 20 ms frames
                await ws.send(json.dumps({"audio": base64.b64encode(pcm[i:i + 320]).decode()}))
                await at_real_time(start, (i + 320) / 16_000)

        speaker = asyncio.create_task(speak())
        async with asyncio.timeout(within(15)):
            async for message in ws:
                event = json.loads(message)
                events.append(event["event"])
                if event["event"] == "audio":
                    audio_bytes += len(base64.b64decode(event["pcm8k"]))
                elif event["event"] == "done":
                    break
        speaker.cancel()
    return {"events": sorted(set(events)), "audio_s": audio_bytes / 16_000}


async def twilio_check(args: argparse.Namespace) -> dict[str, Any]:
    from tests.dialects.twilio_peer import TwilioPeer
    from tests.signals import tone

    parameters = dict(p.split("=", 1) for p in args.param)
    async with TwilioPeer.call(args.url, custom_parameters=parameters) as peer:
        peer.say(tone(440.0, 1.0, rate_hz=8_000))
        try:
            await peer.wait_for(lambda p: bool(p.of("media")) and bool(p.of("mark")), timeout_s=15)
        except AssertionError:
            if peer.close_code is None:
                raise
        else:
            await peer.stop()
    return {"media": len(peer.of("media")), "marks": len(peer.of("mark")), "close_code": peer.close_code}


async def simulators(addresses: list[str]) -> None:
    import socket

    import uvicorn

    from asgi_audio_proxy.simulator.app import UpstreamSimulator

    serving = []
    for address in addresses:
        host, port = address.rsplit(":", 1)
        # bound and listening before the servers start, so "listening" is true when printed
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind((host, int(port)))
        sock.listen(128)
        server = uvicorn.Server(uvicorn.Config(UpstreamSimulator(), log_level="warning", lifespan="off"))
        serving.append(server.serve(sockets=[sock]))
        print(f"simulator listening on {address}", flush=True)
    await asyncio.gather(*serving)


CHECKS = {"ws": ws_check, "http": http_check, "json8k": json8k_check, "twilio": twilio_check}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.docs_probe")
    parser.add_argument("check", choices=sorted([*CHECKS, "simulators"]))
    parser.add_argument("url", nargs="+")
    parser.add_argument("--header", action="append", default=[], help="Name:value")
    parser.add_argument("--subprotocol", action="append", default=[])
    parser.add_argument("--origin", default=None)
    parser.add_argument("--handshake-only", action="store_true", help="ws: read no message")
    parser.add_argument("--post", action="append", default=None, help="a form field, name=value")
    parser.add_argument("--param", action="append", default=[], help="Twilio custom parameter, k=v")
    words = sys.argv[1:] if argv is None else argv
    runs: list[list[str]] = [[]]
    for word in words:
        if word == "+":
            runs.append([])
        else:
            runs[-1].append(word)
    for run in runs:
        args = parser.parse_args(run)
        if args.check == "simulators":
            asyncio.run(simulators(args.url))
            return 0
        args.url = args.url[0]
        try:
            result = asyncio.run(CHECKS[args.check](args))
        except (OSError, ConnectionClosed, TimeoutError, httpx.HTTPError) as exc:
            print(json.dumps({"failed": f"{type(exc).__name__}: {exc}"}))
            return 1
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
