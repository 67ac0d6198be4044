"""Stopping a process a test started, so that none outlives its test."""

from __future__ import annotations

import asyncio
import signal

from tests.timing import within

__all__ = ["stop"]


async def stop(proc: asyncio.subprocess.Process, signum: int = signal.SIGTERM, timeout_s: float = 15) -> int:
    """Ask ``proc`` to stop with ``signum`` and wait for it; returns its exit status.

    Raises:
        TimeoutError: it had not stopped within ``timeout_s`` (scaled as every deadline); it is
            killed first, so a process that hangs fails its test but does not outlive it.
    """
    if proc.returncode is None:
        proc.send_signal(signum)
    try:
        async with asyncio.timeout(within(timeout_s)):
            return await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
