"""The demo, the command-line client and the FastAPI example, run as a person runs them.

``asgi-audio-proxy client`` runs as a subprocess against a demo served in this loop (so the
simulator's record can be read), and ``asgi-audio-proxy demo`` and the example run as the
commands the README gives; every wait is a deadline on the process or a line it prints.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from asgi_audio_proxy.audio import pcm16_to_wav, wav_to_pcm16
from asgi_audio_proxy.demo.server import DemoServer
from asgi_audio_proxy.dialects.native_client import QueuedMessage, ReadyMessage
from tests.clients import arrive
from tests.conftest import running_simulator
from tests.http_clients import http_client
from tests.processes import stop
from tests.signals import dominant_frequency_hz, silence, tone
from tests.test_one_conversation import utterance, watched_simulator
from tests.timing import within

REPO = Path(__file__).resolve().parent.parent


def command(*args: str) -> list[str]:
    """The installed ``asgi-audio-proxy`` script beside this Python, else the module."""
    script = Path(sys.executable).with_name("asgi-audio-proxy")
    if script.exists():
        return [str(script), *args]
    found = shutil.which("asgi-audio-proxy")
    return [found, *args] if found else [sys.executable, "-m", "asgi_audio_proxy.cli", *args]


async def run(argv: list[str], timeout_s: float) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO)
    try:
        async with asyncio.timeout(within(timeout_s)):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        pytest.fail(f"{argv[1:3]} did not finish in time:\n{out.decode()}\n{err.decode()}")
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def loud_part(pcm: bytes) -> bytes:
    samples = np.frombuffer(pcm, "<i2")
    loud = np.flatnonzero(np.abs(samples) > 3000)
    assert loud.size, "no loud audio at all"
    return samples[loud[0] : loud[-1] + 1].tobytes()


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    async with DemoServer(port=0) as server:
        yield server


async def test_demo_serves_the_page_and_its_files_without_any_cdn(demo: DemoServer) -> None:
    async with http_client(base_url=demo.url, trust_env=False) as client:
        page = await client.get("/")
        script = await client.get("/static/demo.js")
        worklet = await client.get("/static/worklet.js")
        health = await client.get("/upstream/health")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert script.status_code == worklet.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert not re.search(r"""(src|href)=["']https?:""", page.text)
    assert "registerProcessor(\"capture-16k\"" in worklet.text
    assert health.json() == {"status": "OK"}


async def test_the_demo_stops_its_pool_with_it() -> None:
    # the pool's health checks and the HTTP client they use end with the demo: left running,
    # a check's connection to the mounted simulator was a socket nobody closed
    async with DemoServer(port=0) as demo:
        client, first = await arrive(demo.proxy_url, 15)
        await client.__aexit__()
    assert isinstance(first, ReadyMessage)
    assert [task for task in asyncio.all_tasks() if task.get_name() == "pool"] == []


# slow: the README's own recipe (tests/test_docs.py, terminal_clients) runs this line in the default run
@pytest.mark.slow
async def test_client_generated_mode_prints_the_transcript_and_saves_the_reply(
    demo: DemoServer, tmp_path: Path
) -> None:
    save = tmp_path / "reply.wav"
    code, out, err = await run(command("client", "--proxy-url", demo.proxy_url, "--mode", "generated",
                                       "--turns", "2", "--save", str(save)), timeout_s=30)
    assert code == 0, out + err
    assert "assistant: Turn 1: heard" in out and "assistant: Turn 2: heard" in out
    assert re.search(r"turn 2: [\d.]+ s of reply audio, latency \d+ ms \(complete\)", out)
    assert "ok: 2/2 turn(s) got a reply" in out
    reply = wav_to_pcm16(save.read_bytes())
    assert (reply.sample_rate_hz, reply.channels) == (16_000, 1)
    assert reply.duration_s > 2.0
    assert abs(dominant_frequency_hz(loud_part(reply.pcm)) - 440.0) < 3


async def test_client_file_mode_sends_any_wav_as_16k_mono(demo: DemoServer, tmp_path: Path) -> None:
    left = tone(660.0, 1.0, rate_hz=44_100) + silence(0.2, rate_hz=44_100)
    both = np.stack([np.frombuffer(left, "<i2")] * 2, axis=1).astype("<i2").tobytes()
    source, save = tmp_path / "speech.wav", tmp_path / "reply.wav"
    source.write_bytes(pcm16_to_wav(both, 44_100, channels=2))
    code, out, err = await run(command("client", "--proxy-url", demo.proxy_url, "--mode", "file",
                                       str(source), "--save", str(save)), timeout_s=20)
    assert code == 0, out + err
    assert "assistant: Turn 1: heard" in out
    assert demo.simulator is not None
    heard = b"".join(b"".join(chunks) for chunks in demo.simulator.recorder.chunks.values())
    assert abs(dominant_frequency_hz(loud_part(heard)) - 660.0) < 3
    reply = wav_to_pcm16(save.read_bytes())
    assert reply.sample_rate_hz == 16_000
    assert abs(dominant_frequency_hz(loud_part(reply.pcm)) - 660.0) < 3


async def test_client_without_a_proxy_fails_with_a_message() -> None:
    code, _, err = await run(command("client", "--proxy-url", "ws://127.0.0.1:9/audio_proxy"),
                             timeout_s=15)
    assert code == 1
    assert "cannot connect to ws://127.0.0.1:9/audio_proxy" in err
    assert "Traceback" not in err


async def test_client_rejects_a_file_that_is_not_a_wav(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not audio")
    code, _, err = await run(command("client", "--mode", "file", str(bogus)), timeout_s=15)
    assert code == 2 and "RIFF/WAVE" in err


async def test_demo_command_prints_its_url_and_stops_on_ctrl_c() -> None:
    proc = await asyncio.create_subprocess_exec(
        *command("demo", "--port", "0", "--talk", "0"), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(within(15)):
            line = (await proc.stdout.readline()).decode()
        match = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        async with http_client(trust_env=False) as client:
            page = await client.get(match.group(1))
            health = await client.get(match.group(1) + "upstream/health")  # as the pool asks
        assert page.status_code == 200 and "Talk to it" in page.text
        assert health.status_code == 200
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(within(10)):
            await proc.wait()
        err = (await proc.stderr.read()).decode()
        out = (await proc.stdout.read()).decode()  # uvicorn's access log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode in (0, 130)
    assert "Traceback" not in err
    assert "Application shutdown complete" in err
    # the access log keeps the page's request and leaves the health checks (one every 5 s) out
    assert '"GET / HTTP/1.1" 200' in out and "/upstream/health" not in out + err


async def test_example_server_under_uvicorn_answers_the_client(tmp_path: Path) -> None:
    async with running_simulator() as upstream:
        env = {**os.environ, "VOICE_SERVER_HOST": "127.0.0.1",
               "VOICE_SERVER_PORT": upstream.url.rsplit(":", 1)[1]}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "uvicorn", "demo_app.audio_proxy_example:app",
            "--host", "127.0.0.1", "--port", "0", cwd=REPO, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None
        try:
            port = None
            async with asyncio.timeout(within(15)):
                while port is None:
                    line = (await proc.stderr.readline()).decode()
                    assert line, "uvicorn exited before it listened"
                    if found := re.search(r"running on http://127\.0\.0\.1:(\d+)", line):
                        port = int(found.group(1))
            save = tmp_path / "reply.wav"
            code, out, err = await run(
                command("client", "--proxy-url", f"ws://127.0.0.1:{port}/audio_proxy",
                        "--mode", "generated", "--turns", "1", "--save", str(save)), timeout_s=20)
        finally:
            await stop(proc, signal.SIGINT, 10)
    assert code == 0, out + err
    assert "assistant: Turn 1: heard" in out
    assert abs(dominant_frequency_hz(loud_part(wav_to_pcm16(save.read_bytes()).pcm)) - 440.0) < 3


async def test_python_m_demo_app_is_the_demo_command() -> None:
    code, out, _ = await run([sys.executable, "-m", "demo_app", "--help"], timeout_s=15)
    assert code == 0 and "usage: asgi-audio-proxy demo" in out and "--upstream" in out


async def test_demo_talks_before_it_announces_the_page_and_a_visitor_then_waits_its_turn() -> None:
    """The start-up talk never shares the model server: whoever comes during it is queued."""
    async with watched_simulator() as (upstream, recorder):
        proc = await asyncio.create_subprocess_exec(
            *command("demo", "--upstream", upstream.url, "--port", "0", "--talk", "2"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO)
        assert proc.stdout is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(within(15)):
                while not (found := re.search(r"says 2 generated turn\(s\) to (ws://\S+) ", lines[-1]
                                              if lines else "")):
                    lines.append((await proc.stdout.readline()).decode())
                    assert lines[-1], "".join(lines)
            await recorder.wait_for(lambda r: r.ws_opened >= 1, within(10))  # the talk is live
            visitor, first = await arrive(found.group(1), 15)
            assert isinstance(first, QueuedMessage) and first.position == 1, first
            assert not any("open http" in line for line in lines)
            assert isinstance(await visitor.next_message(30), ReadyMessage)
            turn = await visitor.say(utterance(0))
            await visitor.__aexit__()
            async with asyncio.timeout(within(10)):
                while not any("open http" in line for line in lines):
                    lines.append((await proc.stdout.readline()).decode())
                    assert lines[-1], "".join(lines)
        finally:
            await stop(proc, signal.SIGINT, 10)
    assert turn.text.startswith("Turn 1: heard"), turn.text  # its own first turn, not the talk's
    text = "".join(lines)
    said = [text.find(line) for line in ("says 2 generated", "every turn got a reply", "open http")]
    assert -1 < said[0] < said[1] < said[2], text
    await recorder.wait_for(lambda r: r.ws_closed == r.ws_opened, within(10))
    recorder.assert_one_conversation_at_a_time(2)
