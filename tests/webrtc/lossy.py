"""A UDP relay that loses and delays packets, between an aiortc client and the proxy.

:func:`relayed` rewrites an SDP answer so the client sends to the relay, which forwards each
datagram to the proxy's candidate and the proxy's back to the client, losing ``loss`` of them
and delaying each by a uniform 0..``jitter_s`` (so some arrive out of order, as netem's do).
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

_HOST = re.compile(r"^(a=candidate:\S+ \d+ udp \d+ )(\S+) (\d+)( typ host.*)$", re.IGNORECASE | re.MULTILINE)


class _Side(asyncio.DatagramProtocol):
    def __init__(self, relay: LossyRelay, outward: bool) -> None:
        self.relay, self.outward = relay, outward
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.received(data, addr, self.outward)


class LossyRelay:
    def __init__(self, target: tuple[str, int], loss: float, jitter_s: float, seed: int = 1) -> None:
        self.target, self.loss, self.jitter_s = target, loss, jitter_s
        self.random = random.Random(seed)
        self.client: tuple[str, int] | None = None
        self.front: _Side | None = None  # faces the client
        self.back: _Side | None = None  # faces the proxy
        self.dropped = self.forwarded = 0

    async def start(self, host: str) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        _, self.front = await loop.create_datagram_endpoint(lambda: _Side(self, True), local_addr=(host, 0))
        _, self.back = await loop.create_datagram_endpoint(lambda: _Side(self, False), local_addr=(host, 0))
        address: tuple[str, int] = self.front.transport.get_extra_info("sockname")[:2]
        return address

    def received(self, data: bytes, addr: tuple[str, int], from_client: bool) -> None:
        if from_client:
            self.client = addr
        if self.random.random() < self.loss:
            self.dropped += 1
            return
        self.forwarded += 1
        side, to = (self.back, self.target) if from_client else (self.front, self.client)
        if side is None or to is None:
            return
        delay = self.random.uniform(0, self.jitter_s)
        asyncio.get_running_loop().call_later(delay, side.transport.sendto, data, to)

    def take_answer(self, answer: str) -> str:
        """The answer to a :func:`relayed_offer`: the proxy's first host candidate is where the
        relay forwards; the client is given the relay's front instead."""
        first = _HOST.search(_ipv4_only(answer))
        assert first is not None and self.front is not None, "the answer has no IPv4 host candidate"
        self.target = (first[2], int(first[3]))
        return _to(_ipv4_only(answer), self.front.transport.get_extra_info("sockname")[:2])

    def close(self) -> None:
        for side in (self.front, self.back):
            if side is not None and side.transport is not None:
                side.transport.close()


def _to(sdp: str, address: tuple[str, int]) -> str:
    return _HOST.sub(lambda m: f"{m[1]}{address[0]} {address[1]}{m[4]}", sdp)


def _ipv4_only(sdp: str) -> str:
    return "\r\n".join(line for line in sdp.splitlines()
                        if not (line.startswith("a=candidate:") and " typ host" in line
                                and ":" in line.split()[4])) + "\r\n"


async def relayed_offer(offer: str, loss: float, jitter_s: float) -> tuple[str, LossyRelay]:
    """The offer with its host candidates pointing at a new relay's back socket, so neither side
    knows a path around the relay; :meth:`LossyRelay.take_answer` does the same to the answer."""
    first = _HOST.search(_ipv4_only(offer))
    assert first is not None, "the offer has no IPv4 host candidate"
    relay = LossyRelay(("0.0.0.0", 0), loss, jitter_s)
    await relay.start(first[2])
    assert relay.back is not None
    back: tuple[str, int] = relay.back.transport.get_extra_info("sockname")[:2]
    return _to(_ipv4_only(offer), back), relay


async def relayed(answer: str, loss: float, jitter_s: float) -> tuple[str, LossyRelay]:
    """The answer with its host candidates pointing at a new relay to their first one."""
    first = _HOST.search(answer)
    assert first is not None, "the answer has no host candidate"
    relay = LossyRelay((first[2], int(first[3])), loss, jitter_s)
    host, port = await relay.start(first[2])
    return _HOST.sub(lambda m: f"{m[1]}{host} {port}{m[4]}", answer), relay
