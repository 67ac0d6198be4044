"""``FileLeaseStore``: the lease store shared by the processes of one machine, in one file.

Owns: the state file and its lock, and the wake-up sockets that tell the other processes of a
change. The rules are :class:`~asgi_audio_proxy.pool.store.MemoryLeaseStore`'s, run on the
state read under the lock and written back before it is released, so this store cannot drift
from the memory and Redis ones (``tests/test_leases_file.py`` runs the same contract).

Layout, in ``directory``:

- ``leases.json``: the queue, each queued ticket's expiry, each lease (ticket, token, expiry)
  and the fencing-token counter; every call holds ``fcntl.flock`` on it while it reads and
  writes. Expiries are ``time.monotonic()`` readings, one clock for the whole machine (Linux),
  so the file means nothing after a reboot: give each run a fresh directory (``serve --workers``
  makes one).
- ``<pid>-<id>.wake``: one Unix datagram socket per store that has started. A change (grant,
  release, leave, expiry found) sends one byte to every other socket; each turns it into a
  local wake-up, as the Redis store's pub/sub does, with no polling. A socket nobody reads any
  more (its process died) refuses the byte and is removed.

A call blocks the event loop while it holds the lock: a few tens of microseconds, the time to
read and write a small file (``python -m benchmarks.lease_stores`` measures it).
Must not: know about clients, health or the upstream protocol (``UPSTREAM_PROTOCOL.md`` 5.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import LeaseStoreUnavailable
from .store import (
    DEFAULT_LEASE_TTL_S,
    ChangeSignal,
    Grant,
    MemoryLeaseStore,
    QueueFull,
    StoreSnapshot,
    Waiting,
)

__all__ = ["FileLeaseStore"]

_T = TypeVar("_T")
_STATE = "leases.json"
_WAKE_SUFFIX = ".wake"
#: a Unix socket's path must fit in sockaddr_un (108 bytes on Linux, 104 on macOS)
_MAX_SOCKET_PATH = 100


class _Rules(MemoryLeaseStore):
    """The memory store's rules on a state loaded from, and dumped to, the file."""

    def load(self, state: dict[str, Any]) -> None:
        self._queue = list(state.get("queue", []))
        self._ticket_expiry = {t: float(e) for t, e in state.get("tickets", {}).items()}
        self._leases = {url: (Grant(url, ticket, int(token)), float(expiry))
                        for url, (ticket, token, expiry) in state.get("leases", {}).items()}
        self._fence = int(state.get("fence", 0))

    def dump(self) -> dict[str, Any]:
        return {"queue": self._queue, "tickets": self._ticket_expiry, "fence": self._fence,
                "leases": {url: [g.ticket, g.token, expiry] for url, (g, expiry) in self._leases.items()}}


class FileLeaseStore:
    """Leases and the queue in a file, shared by every process of one machine using ``directory``.

    Call :meth:`start` (the pool does) so this process hears of the others' changes, and
    :meth:`aclose`. A failing file system raises
    :class:`~asgi_audio_proxy.errors.LeaseStoreUnavailable`, chained to the ``OSError``.

    Args:
        directory: where the state file and the wake-up sockets live (made if missing); its
            path must be short (a Unix socket path is at most about 100 bytes).
        ttl_s: how long a lease or queued ticket outlives its process's last heartbeat.
        clock: monotonic seconds, the same for every process sharing the file.

    Raises:
        ValueError: ``ttl_s`` out of range, or ``directory`` too long for a socket path.
    """

    def __init__(self, directory: str | os.PathLike[str], *, ttl_s: float = DEFAULT_LEASE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rules = _Rules(ttl_s=ttl_s, clock=clock)  # checks ttl_s
        self.ttl_s = ttl_s
        self.directory = Path(directory)
        self._wake_path = self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}{_WAKE_SUFFIX}"
        if len(os.fsencode(self._wake_path)) > _MAX_SOCKET_PATH:
            raise ValueError(f"invalid directory={str(directory)!r}: too long for a Unix socket path "
                             f"(at most {_MAX_SOCKET_PATH - 22} bytes)")
        self._fd: int | None = None
        self._socket: socket.socket | None = None
        self._changes = ChangeSignal()

    @property
    def version(self) -> int:
        return self._changes.version

    async def start(self) -> None:
        """Open the state file and listen for the other processes' changes; idempotent."""
        if self._socket is not None:
            return
        self._open()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.setblocking(False)
        listener.bind(str(self._wake_path))
        asyncio.get_running_loop().add_reader(listener.fileno(), self._woken)
        self._socket = listener

    async def join(self, ticket: str, urls: Sequence[str], max_queue: int, *,
                   front: bool = False) -> Grant | Waiting | QueueFull:
        return await self._apply(lambda rules: rules.join(ticket, urls, max_queue, front=front))

    async def poll(self, ticket: str, urls: Sequence[str]) -> Grant | Waiting | None:
        return await self._apply(lambda rules: rules.poll(ticket, urls))

    async def leave(self, ticket: str, urls: Sequence[str]) -> None:
        await self._apply(lambda rules: rules.leave(ticket, urls))

    async def renew(self, tickets: Collection[str], grants: Collection[Grant]) -> set[str | Grant]:
        return await self._apply(lambda rules: rules.renew(tickets, grants))

    async def release(self, grant: Grant) -> bool:
        return await self._apply(lambda rules: rules.release(grant))

    async def changed(self, seen: int, timeout_s: float | None) -> None:
        await self._changes.wait(seen, timeout_s)

    def wake(self) -> None:
        self._changes.bump()

    async def snapshot(self, urls: Sequence[str]) -> StoreSnapshot:
        return await self._apply(lambda rules: rules.snapshot(urls))

    async def aclose(self) -> None:
        listener, self._socket = self._socket, None
        if listener is not None:
            with contextlib.suppress(RuntimeError):  # the loop that started it is already closed
                asyncio.get_running_loop().remove_reader(listener.fileno())
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                self._wake_path.unlink()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    async def _apply(self, operation: Callable[[_Rules], Awaitable[_T]]) -> _T:
        """Run one rule on the state, under the lock; tell everyone if it changed anything.

        The rules never suspend (they are the memory store's), so no other call of this process
        runs while the lock is held.
        """
        rules = self._rules
        try:
            with self._locked() as state:
                rules.load(state)
                before = rules.version
                outcome = await operation(rules)
                changed = rules.version != before  # what may let a waiter in, as in memory
                state.clear()
                state.update(rules.dump())  # written if it differs (a ticket joined the queue)
        except OSError as exc:
            raise LeaseStoreUnavailable(f"the lease store ({self.directory}) failed: {exc}") from exc
        if changed:
            self._changes.bump()
            self._tell_others()
        return outcome

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The state, read under an exclusive lock and written back if the caller changed it."""
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            raw = os.pread(fd, os.fstat(fd).st_size, 0)
            state: dict[str, Any] = json.JSONDecoder().raw_decode(raw.decode())[0] if raw.strip() else {}
            before = dict(state)
            yield state
            if state != before:
                data = json.dumps(state, separators=(",", ":")).encode()
                # written, then cut to length: a process killed in between leaves the new state
                # and some old bytes after it, which raw_decode ignores
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _open(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.directory / _STATE, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def _tell_others(self) -> None:
        sender = self._socket or socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)
        try:
            for path in self.directory.glob("*" + _WAKE_SUFFIX):
                if path == self._wake_path:
                    continue
                try:
                    sender.sendto(b"!", str(path))
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()  # its process is gone
                except BlockingIOError:
                    pass  # its queue is full of wake-ups it has not read yet: it will re-check
        finally:
            if sender is not self._socket:
                sender.close()

    def _woken(self) -> None:
        assert self._socket is not None
        with contextlib.suppress(BlockingIOError):
            while self._socket.recv(64):
                pass
        self._changes.bump()
