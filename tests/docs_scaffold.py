"""What the docs' tests put around a block, shared by ``tests/test_docs.py`` and
``tests/test_docs_pages.py``: the one registry of handlers, running them (alone or a group at
once, each in its own sandbox), and the few things several handlers add around their blocks:
serving an app file, the model server a block names, the checks of a served app, the Agents
SDKs' agent, the pip extras a block installs.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
import traceback
from pathlib import Path
from typing import Any

import pytest

from tests.docs_blocks import REPO, Block, Handler, Handlers, docs_blocks
from tests.docs_sandbox import SANDBOX_REASON, CommandFailed, Proc, Sandbox, sandbox_available
from tests.timing import within

__all__ = ["AGENT_JS", "AGENT_PY", "HANDLERS", "LISTENING", "YOUR_APP", "assert_extra", "assert_first",
           "help_text", "printed_urls", "ready", "realtime_clients", "run_case", "serve_app", "simulator"]

#: every handler of the docs' blocks, from both test modules
HANDLERS = Handlers()
#: the line uvicorn (and ``serve``, which runs it) prints once it listens
LISTENING = r"Uvicorn running on http://"
SANDBOX_AVAILABLE = sandbox_available()


async def run_handler(handler: Handler, tmp_path: Path) -> None:
    """Run one handler on the blocks as they are now, in a sandbox if it needs one."""
    blocks = {(b.file, b.first_line): b for b in docs_blocks()}
    missing = [ref for ref in handler.refs if ref not in blocks]
    assert not missing, f"no block starts with these lines any more: {missing}"
    if not handler.sandboxed:
        await handler.run(blocks, None, tmp_path)
        return
    if not SANDBOX_AVAILABLE:
        pytest.skip(SANDBOX_REASON)
    async with Sandbox() as box:
        await handler.run(blocks, box, tmp_path)


async def run_case(case: tuple[Handler, ...], tmp_path: Path) -> None:
    """A test's handlers, at the same time, each in a directory of its own; then one verdict
    that names each handler that failed (with its output) or skipped (with its reason)."""
    outcomes: dict[str, BaseException | None] = {}

    async def run(handler: Handler) -> None:
        (tmp_path / handler.name).mkdir()
        try:
            await run_handler(handler, tmp_path / handler.name)
        except (Exception, pytest.skip.Exception) as exc:  # each handler's verdict is its own
            outcomes[handler.name] = exc
        else:
            outcomes[handler.name] = None

    async with asyncio.TaskGroup() as tg:
        for handler in case:
            tg.create_task(run(handler))
    failed = {name: exc for name, exc in outcomes.items()
              if exc is not None and not isinstance(exc, pytest.skip.Exception)}
    if failed:
        pytest.fail("\n\n".join(f"{name}: {_verdict(exc)}" for name, exc in failed.items()), pytrace=False)
    skipped = {name: exc for name, exc in outcomes.items() if exc is not None}
    if skipped:
        ran = [name for name, exc in outcomes.items() if exc is None]
        pytest.skip("; ".join(f"{name}: {exc}" for name, exc in skipped.items())
                    + (f" (passed: {', '.join(ran)})" if ran else ""))


def _verdict(exc: BaseException) -> str:
    """A command's failure is its output (those of a handler's task group too); an assertion of
    the handler's own, its traceback."""
    if isinstance(exc, CommandFailed):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        commands, rest = exc.split(CommandFailed)
        if rest is None and commands is not None:
            return "\n".join(_verdict(leaf) for leaf in commands.exceptions)
    return "\n" + "".join(traceback.format_exception(exc))


async def serve_app(box: Sandbox, tmp: Path, source: str, command: str) -> Proc:
    """``source`` saved as ``your_app.py`` in ``tmp``, served by ``command``, once it listens."""
    (tmp / "your_app.py").write_text(source)
    proc = await box.start(command, cwd=tmp)
    await proc.line(LISTENING)
    return proc


async def ready(box: Sandbox, url: str, *options: str) -> None:
    """A native client's first message after any ``queued`` is ``ready``: the proxy reached the
    model server."""
    assert_first(await box.probe("ws", url, *options), "ready")


async def printed_urls(box: Sandbox, output: str) -> None:
    """The ``ws://`` URLs a command printed work: the native one says ``ready``, the Realtime
    one ``session.created``, the Twilio one accepts the stream (Twilio speaks first)."""
    urls = set(re.findall(r"ws://[\w.:/-]+", output))
    native = {url for url in urls if not url.endswith(("/v1", "/realtime", "/twilio"))}
    realtime = {url for url in urls if url.endswith("/v1/realtime")}
    twilio = {url for url in urls if url.endswith("/twilio")}
    assert native and realtime and twilio, output
    checks = [["ws", url] for url in sorted(native | realtime)] + [
        ["ws", url, "--handshake-only"] for url in sorted(twilio)]
    for check, seen in zip(checks, await box.probes(*checks), strict=True):
        if check[1] in twilio:
            assert seen["status"] == 101, (check, seen)
        else:
            assert_first(seen, "session.created" if check[1] in realtime else "ready")


def assert_first(seen: dict[str, Any], kind: str) -> None:
    """A ``ws`` check was accepted, and its first message (after any ``queued``) is ``kind``."""
    assert seen.get("first", {}).get("type") == kind, seen


#: the middleware blocks are fragments: they add to the user's ``app``
YOUR_APP = """
from fastapi import FastAPI

app = FastAPI()
"""


async def simulator(box: Sandbox) -> None:
    """The model server the blocks default to (127.0.0.1:32550)."""
    await box.simulators("127.0.0.1:32550")


#: what the Agents SDK fragments need: an agent (Python)...
AGENT_PY = """
import asyncio

from agents.realtime import RealtimeAgent, RealtimeRunner

agent = RealtimeAgent(name="assistant", instructions="Answer briefly.")
"""
#: ...entering the session is what connects it: the fragment makes it, the app then uses it
AGENT_PY_USE = """
async with session:
    pass
"""
#: ...and in JavaScript (then the app closes it, so the script ends)
AGENT_JS = """
import { RealtimeAgent, RealtimeSession } from '@openai/agents/realtime';
const agent = new RealtimeAgent({ name: 'assistant', instructions: 'Answer briefly.' });
"""
AGENT_JS_USE = "session.close();\n"
JS_DIR = REPO / "tests" / "dialects" / "realtime_js"


async def run_python(box: Sandbox, tmp: Path, name: str, source: str) -> Proc:
    (tmp / name).write_text(source)
    return await box.run([sys.executable, name], cwd=tmp, timeout_s=30)


async def run_js(box: Sandbox, tmp: Path, name: str, source: str) -> Proc | None:
    """The script next to the installed ``@openai/agents`` (``tests/dialects/realtime_js``)."""
    if shutil.which("node") is None or not (JS_DIR / "node_modules" / "@openai" / "agents").is_dir():
        return None
    (tmp / "node_modules").symlink_to(JS_DIR / "node_modules")
    (tmp / name).write_text(source)
    return await box.run(["node", name], cwd=tmp, timeout_s=30)


async def realtime_clients(box: Sandbox, tmp: Path, openai_sdk: str, agents_py: Block,
                           agents_js: Block) -> Proc:
    """The three SDK snippets, at once (each is its own conversation; they queue for the model);
    the openai one's run."""
    python_agents = agents_py.python_in_main(AGENT_PY, AGENT_PY_USE)
    js_agents = AGENT_JS + agents_js.text + AGENT_JS_USE
    said, _, js = await asyncio.gather(run_python(box, tmp, "openai_app.py", openai_sdk),
                                       run_python(box, tmp, "agents_app.py", python_agents),
                                       run_js(box, tmp, "agents_app.mjs", js_agents))
    if js is None:
        pytest.skip("node or tests/dialects/realtime_js/node_modules is missing (npm ci there): "
                    "the JavaScript snippet was not run; the two Python ones were")
    return said


def assert_extra(install: str) -> None:
    """``pip install 'asgi-audio-proxy[EXTRA]'`` (or ``-e '.[EXTRA]'``): not from the index, but
    the extra is declared, and its packages are installed here."""
    extra = re.search(r"(?:asgi-audio-proxy|\.)\[(\w+)\]", install)
    assert extra, install
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extra.group(1) in declared, f"no [{extra.group(1)}] extra in pyproject.toml"
    for requirement in declared[extra.group(1)]:
        name = re.split(r"[<>=;\[ ]", requirement, maxsplit=1)[0]
        assert importlib.metadata.version(name), name


def help_text(module: str) -> str:
    """What ``python -m MODULE --help`` prints; it must exit 0."""
    helped = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True,
                            text=True, check=False, timeout=within(30))
    assert helped.returncode == 0, helped.stderr
    return helped.stdout
