"""Stopping a background task for sure.

Owns: :func:`stop_task`. A forever loop (a heartbeat, health checks, a channel listener) can
survive one cancellation: a library under it that swallows a ``CancelledError`` (say, one of
its own timeouts expiring as the cancellation lands, turned into an error the loop handles as
one more failed round) leaves the loop running and whoever awaits it waiting for good. Must
not: wait without end, or hide an error the task ended with.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["STOP_GRACE_S", "stop_task"]

logger = logging.getLogger(__name__)

#: how long a cancelled task may take to end before it is cancelled again
STOP_GRACE_S = 1.0


async def stop_task(task: asyncio.Task[Any], *, grace_s: float = STOP_GRACE_S) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again every ``grace_s`` it
    runs on (with a warning naming it), so a swallowed cancellation cannot stall the caller.

    Raises:
        Exception: the one ``task`` ended with, if any other than its cancellation.
    """
    task.cancel()
    while True:
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if done:
            break
        logger.warning("task %s still runs %g s after it was cancelled; cancelling it again",
                       task.get_name(), grace_s)
        task.cancel()
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error
