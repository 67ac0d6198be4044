"""A private network where the docs' commands run as written: their ports and host names are real.

The docs name fixed addresses (``127.0.0.1:8001``, ``:32550``, ``gpu0:32550``, ``redis:6379``,
``host:8000``). On a shared machine, in parallel test workers, those ports may be taken, and the
names resolve nowhere. So each run gets its own network namespace (``unshare --user --net
--mount``, no privileges needed): a loopback of its own, where every port is free, and an
``/etc/hosts`` of its own, where each name the docs use is a loopback address of its own
(``gpu0`` is 127.0.0.10, ``gpu1`` 127.0.0.11...), so three model servers can all listen on 32550.
Nothing is substituted in the text of a block.

``async with Sandbox() as box``: ``box.start("asgi-audio-proxy serve ...")`` runs a command line
in it with ``bash -c`` (as a user types it, with the test's virtual environment first on
``PATH``, as if activated), ``await proc.line(pattern)`` waits for a line of its output (stdout
and stderr together), ``await box.run(...)`` waits for a command to end. Every process started
is stopped on exit, by its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.timing import within

__all__ = ["HOSTS", "REDIS_READY", "SANDBOX_REASON", "CommandFailed", "Proc", "Sandbox",
           "sandbox_available"]

#: the host names the docs use, each on a loopback address of its own inside the sandbox
HOSTS: Mapping[str, str] = {
    "localhost": "127.0.0.1", "host": "127.0.0.1", "gpu0": "127.0.0.10", "gpu1": "127.0.0.11",
    "gpu2": "127.0.0.12", "gpu-1": "127.0.0.13", "gpu-2": "127.0.0.14", "redis": "127.0.0.20",
}
REPO = Path(__file__).resolve().parent.parent
REDIS_READY = "Ready to accept connections"
#: the virtual environment running the tests: a user of the docs has it activated
VENV_BIN = Path(sys.executable).parent
SANDBOX_REASON = ("the docs' commands run in a private network namespace (their fixed ports and "
                  "host names), and `unshare --user --net --mount` is not permitted here")

# Run inside the new namespaces: loopback up (a new network namespace has it down), the hosts
# file over /etc/hosts (in this mount namespace only), then hold the namespaces until stdin ends.
_HOLDER = r"""
import fcntl, socket, struct, subprocess, sys
ifreq = struct.pack("16sH14s", b"lo", 0, b"")
with socket.socket() as s:
    flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, ifreq))[1]  # SIOCGIFFLAGS
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))  # SIOCSIFFLAGS: IFF_UP
subprocess.run(["mount", "--bind", sys.argv[1], "/etc/hosts"], check=True)
print("ready", flush=True)
sys.stdin.read()
"""


def _absolute(cwd: Path | str | None) -> str:
    return os.path.abspath(cwd or os.getcwd())


class CommandFailed(AssertionError):
    """A command in the sandbox ended badly or did not print what was awaited; carries its output."""


def sandbox_available() -> bool:
    """Whether this machine lets an unprivileged user make the sandbox's namespaces."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "--mount", "true"],
                           capture_output=True, check=False)
    return probe.returncode == 0


@dataclass
class Proc:
    """A process in the sandbox, its output read line by line as it comes."""

    command: str
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            async with self._changed:
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        await self.process.wait()
        async with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def exited(self) -> bool:
        return self._reader is not None and self._reader.done()

    def failure(self, what: str) -> CommandFailed:
        return CommandFailed(f"{what}\n$ {self.command}\n{self.output[-4000:]}")

    async def line(self, pattern: str, timeout_s: float = 20) -> re.Match[str]:
        """The first line of output (so far or to come) that matches ``pattern``.

        Raises:
            CommandFailed: the process ended, or the deadline passed, before such a line.
        """
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            return next((m for line in self.lines if (m := regex.search(line))), None)

        try:
            async with asyncio.timeout(within(timeout_s)), self._changed:
                await self._changed.wait_for(lambda: found() is not None or self.exited)
        except TimeoutError:
            raise self.failure(f"no line matching {pattern!r} within {timeout_s} s") from None
        match = found()
        if match is None:
            raise self.failure(f"exited ({self.process.returncode}) before a line matching {pattern!r}")
        return match

    async def wait(self, timeout_s: float = 30) -> int:
        """The exit status, once the process has ended and its output is read."""
        assert self._reader is not None
        try:
            async with asyncio.timeout(within(timeout_s)):
                await asyncio.shield(self._reader)
        except TimeoutError:
            raise self.failure(f"still running after {timeout_s} s") from None
        assert self.process.returncode is not None
        return self.process.returncode

    async def stop(self) -> None:
        """SIGTERM to its process group (a shell's background jobs included), SIGKILL if it
        has not ended within the deadline."""
        for sig, grace_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if self.exited:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(CommandFailed):
                await self.wait(grace_s)
        if not self.exited:
            raise self.failure("did not end on SIGKILL")
        # the shell may have ended before its background jobs: they share its process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


class Sandbox:
    """A private network and ``/etc/hosts``, with the processes started in them."""

    def __init__(self) -> None:
        self._holder: asyncio.subprocess.Process | None = None
        self._procs: list[Proc] = []
        self._dir = tempfile.TemporaryDirectory(prefix="docs-sandbox-")
        self.env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    async def __aenter__(self) -> Sandbox:
        hosts = Path(self._dir.name) / "hosts"
        hosts.write_text("".join(f"{address} {name}\n" for name, address in HOSTS.items()))
        self._holder = await asyncio.create_subprocess_exec(
            "unshare", "--user", "--map-root-user", "--net", "--mount", sys.executable, "-c", _HOLDER,
            str(hosts), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        assert self._holder.stdout is not None
        async with asyncio.timeout(within(10)):
            ready = await self._holder.stdout.readline()
        if ready.strip() != b"ready":
            rest = await self._holder.stdout.read()
            raise RuntimeError(f"the sandbox did not start: {(ready + rest).decode(errors='replace')}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            stopping = [proc.stop() for proc in reversed(self._procs)]
            # every one is stopped, whatever another did; then the first failure, if any
            for outcome in await asyncio.gather(*stopping, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome
        finally:
            assert self._holder is not None and self._holder.stdin is not None
            self._holder.stdin.close()
            async with asyncio.timeout(within(10)):
                await self._holder.wait()
            self._dir.cleanup()

    async def start(self, command: str | Sequence[str], *, cwd: Path | str | None = None,
                    env: Mapping[str, str] | None = None) -> Proc:
        """Start a command line (run by ``bash -c``, exactly as given) or an argv in the sandbox."""
        assert self._holder is not None
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        workdir = _absolute(cwd)
        process = await asyncio.create_subprocess_exec(
            "nsenter", f"--target={self._holder.pid}", "--user", "--net", "--mount",
            # entering the mount namespace moves to its root: --wd is where the command runs
            "--preserve-credentials", f"--wd={workdir}", *argv, cwd=workdir, env={**self.env, **(env or {})},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        proc = Proc(command if isinstance(command, str) else " ".join(argv), process)
        self._procs.append(proc)
        return proc

    async def run(self, command: str | Sequence[str], *, cwd: Path | str | None = None,
                  env: Mapping[str, str] | None = None, timeout_s: float = 30) -> Proc:
        """Run a command to its end; it must exit 0.

        Raises:
            CommandFailed: a non-zero exit status, or still running at the deadline.
        """
        proc = await self.start(command, cwd=cwd, env=env)
        if await proc.wait(timeout_s) != 0:
            raise proc.failure(f"exit status {proc.process.returncode}")
        return proc

    @contextlib.asynccontextmanager
    async def serving(self, command: str | Sequence[str], ready: str, *, cwd: Path | str | None = None,
                      env: Mapping[str, str] | None = None) -> AsyncIterator[Proc]:
        """A server for the block: started, awaited until a line matches ``ready``, stopped after."""
        proc = await self.start(command, cwd=cwd, env=env)
        try:
            await proc.line(ready)
            yield proc
        finally:
            await proc.stop()

    # -- what a block needs around it -------------------------------------------------------

    async def simulators(self, *addresses: str) -> Proc:
        """The upstream simulator on each ``host:port`` (``gpu0:32550``), in one process."""
        ips = [f"{HOSTS.get(host, host)}:{port}" for host, port in (a.rsplit(":", 1) for a in addresses)]
        proc = await self.start([sys.executable, "-m", "tests.docs_probe", "simulators", *ips], cwd=REPO)
        await proc.line(f"simulator listening on {re.escape(ips[-1])}$")
        return proc

    async def redis(self, host: str = "redis", port: int = 6379) -> Proc:
        """A redis-server without persistence on ``host:port`` (``redis:6379``, as the docs say)."""
        proc = await self.start(["redis-server", "--bind", HOSTS.get(host, host), "--port", str(port),
                                 "--save", "", "--appendonly", "no"])
        await proc.line(REDIS_READY)
        return proc

    async def probe(self, check: str, url: str, *options: str) -> dict[str, Any]:
        """One check of ``tests/docs_probe.py`` from inside the sandbox; what it saw."""
        return (await self.probes([check, url, *options]))[0]

    async def probes(self, *checks: Sequence[str]) -> list[dict[str, Any]]:
        """Several checks, one after the other, in one process; what each saw."""
        argv = [word for i, check in enumerate(checks) for word in ([] if i == 0 else ["+"]) + list(check)]
        proc = await self.run([sys.executable, "-m", "tests.docs_probe", *argv], cwd=REPO)
        return [json.loads(line) for line in proc.lines[-len(checks):]]
