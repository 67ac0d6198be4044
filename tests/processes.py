"""Stopping a process a test started, so that none outlives its test: :func:`stop` for an asyncio
subprocess, :func:`stop_group` for a process group started with ``subprocess.Popen``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
from typing import Any

from tests.timing import within

__all__ = ["metric_totals", "stop", "stop_group"]


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


def stop_group(proc: subprocess.Popen[Any], timeout_s: float = 15) -> None:
    """SIGTERM to the process group ``proc`` leads (it was started with ``start_new_session``), and
    wait for it; SIGKILL to the group if it has not ended within ``timeout_s`` (scaled). A group
    already gone (the process exited, and all it started) is only reaped."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        proc.wait()
        return
    try:
        proc.wait(within(timeout_s))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def metric_totals(exposition: str) -> dict[str, float]:
    """A ``/metrics`` page summed over labels: ``{"audio_proxy_live_sessions": 2.0, ...}``."""
    totals: dict[str, float] = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            name, value = re.sub(r"\{.*\}", "", line).rsplit(" ", 1)
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals
