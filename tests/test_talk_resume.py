"""``asgi-audio-proxy client`` after a cut: it resumes its session by itself and says so.

The client talks through a TCP relay that drops both sockets (no close frame) while it speaks;
it reconnects with its resume token, the turn is answered, and the model server saw one
conversation. A refused resume ends the run with an error that says so.
"""

from __future__ import annotations

import asyncio
import io

import pytest

from asgi_audio_proxy.client.audio import generated_utterance
from asgi_audio_proxy.client.console import Console
from asgi_audio_proxy.client.reconnect import with_query
from asgi_audio_proxy.client.talk import TalkFailed, TalkOptions, talk
from asgi_audio_proxy.session.resume import ResumeTokens
from tests.test_resume_live import proxied
from tests.timing import within


def test_the_resume_token_joins_the_query() -> None:
    assert with_query("ws://h:1/p?token=a", resume="b c") == "ws://h:1/p?token=a&resume=b+c"
    assert with_query("ws://h:1/p?resume=old", resume="new") == "ws://h:1/p?resume=new"


async def test_the_client_resumes_a_cut_connection_and_its_turns_are_answered() -> None:
    async with proxied() as (up, proxy, relay, ended):
        out, err = io.StringIO(), io.StringIO()
        options = TalkOptions(proxy_url=f"ws://127.0.0.1:{relay.port}/", mode="generated",
                              utterance=generated_utterance(1.0), turns=2, pause_s=0.2)
        run = asyncio.create_task(talk(options, Console(out, err, live=False)))
        await up.sim.recorder.wait_for(lambda r: sum(map(len, r.chunks.values())) >= 2,
                                       timeout=within(10))
        relay.cut()  # while the first utterance goes out
        assert await asyncio.wait_for(run, within(20)) == 0
        assert "connection lost: resuming" in err.getvalue() and "* resumed: session" in err.getvalue()
        await proxy.wait_idle()
        [stats] = ended
        assert stats.resumes == 1 and stats.close_code == 1000
        assert len(set(up.sim.recorder.completions_uids)) == 1 and len(up.sim.recorder.options) == 1


async def test_a_refused_resume_ends_the_run_with_an_error_that_says_so() -> None:
    async with proxied(grace_s=0.5) as (up, proxy, relay, _ended):
        options = TalkOptions(proxy_url=f"ws://127.0.0.1:{relay.port}/", mode="generated",
                              utterance=generated_utterance(1.0), turns=1)
        run = asyncio.create_task(talk(options, Console(io.StringIO(), io.StringIO(), live=False)))
        await up.sim.recorder.wait_for(lambda r: sum(map(len, r.chunks.values())) >= 2,
                                       timeout=within(10))
        proxy.resume_tokens = ResumeTokens()  # as another process: it knows no token
        relay.cut()
        with pytest.raises(TalkFailed, match="could not be resumed: resume_failed"):
            await asyncio.wait_for(run, within(10))
