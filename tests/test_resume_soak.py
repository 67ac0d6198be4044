"""Cut-and-resume cycles leave nothing behind: after ``RESUME_CYCLES`` (20; the issue's 200 with
``RESUME_CYCLES=200``) cuts of one session's connection, each resumed, and its close, the proxy
holds no session, no token, no task and no file descriptor beyond its baseline, and the model
server saw one conversation on one socket."""

from __future__ import annotations

import asyncio
import os

from asgi_audio_proxy.dialects.native_client import ReadyMessage, ResumedMessage
from tests.clients import arrive
from tests.test_resume_live import proxied
from tests.timing import within

CYCLES = int(os.environ.get("RESUME_CYCLES", "20"))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_cut_and_resume_cycles_leave_no_session_token_task_or_fd() -> None:
    async with proxied() as (up, proxy, relay, ended):
        url = f"ws://127.0.0.1:{relay.port}/"
        warm, ready = await arrive(url)  # the first session warms the pools up
        await warm.__aexit__()
        await proxy.wait_idle()
        tasks, fds = len(asyncio.all_tasks()), _fds()
        client, ready = await arrive(url)
        assert isinstance(ready, ReadyMessage)
        token = ready.resume_token
        for _ in range(CYCLES):
            await client.conn.send(bytes(3200))
            relay.cut()
            client, resumed = await arrive(f"{url}?resume={token}")
            assert isinstance(resumed, ResumedMessage), resumed
            token = resumed.resume_token
        await client.__aexit__()
        async with asyncio.timeout(within(5)):
            await proxy.wait_idle()
        await up.sim.recorder.wait_for(lambda r: r.ws_opened == r.ws_closed, timeout=within(5))
        assert len(proxy.resume_tokens) == 0 and not proxy.sessions
        assert len(asyncio.all_tasks()) <= tasks, "leftover asyncio tasks"
        assert _fds() <= fds, f"fds: {fds} before, {_fds()} after"
    assert ended[-1].resumes == CYCLES and ended[-1].balanced
    assert up.sim.recorder.ws_opened == 2  # the warm-up's and this one's: one per conversation
