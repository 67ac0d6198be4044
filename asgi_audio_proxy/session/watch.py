"""The session's watchdog: the ends that come from time, not from either side.

Owns: waiting for the first of the server's shutdown, the session's time limit and its idle
limit, and raising the error each means. Must not: touch the client or the upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..config import ProxyConfig
from ..errors import IdleTimeout, ServerShutdown, SessionLimitExceeded

__all__ = ["watch_session"]


async def watch_session(config: ProxyConfig, shutdown: asyncio.Event,
                        last_activity: Callable[[], float]) -> None:
    """Wait until the session must end; never returns.

    Args:
        config: ``max_session_s`` and ``idle_timeout_s``.
        shutdown: set when the server is going away.
        last_activity: when audio last came or went (the loop's clock).

    Raises:
        ServerShutdown, SessionLimitExceeded, IdleTimeout: whichever comes first.
    """
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + config.max_session_s
    while True:
        try:
            async with asyncio.timeout_at(min(ends_at, last_activity() + config.idle_timeout_s)):
                await shutdown.wait()
        except TimeoutError:
            now = loop.time()
            if now >= ends_at:
                raise SessionLimitExceeded("the session reached its time limit of "
                                           f"{config.max_session_s:g} s") from None
            if now >= last_activity() + config.idle_timeout_s:
                raise IdleTimeout(f"no audio for {config.idle_timeout_s:g} s") from None
            continue  # there was activity meanwhile: wait again from it
        raise ServerShutdown("the server is shutting down")
