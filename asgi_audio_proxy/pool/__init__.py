"""Upstream leases: the lease seam, the fair-queue pool, the lease stores (memory, file, Redis) and
health checks.
"""

from __future__ import annotations

from typing import Any

from .file_store import FileLeaseStore
from .health import HealthSource, UpstreamHealth
from .lease import Lease, UpstreamLeaser
from .pool import PoolLease, UpstreamPool, UpstreamServer, slot_keys
from .store import (
    DEFAULT_LEASE_TTL_S,
    ChangeSignal,
    Grant,
    LeaseStore,
    MemoryLeaseStore,
    QueueFull,
    StoreSnapshot,
    Waiting,
)

__all__ = [
    "DEFAULT_LEASE_TTL_S",
    "ChangeSignal",
    "FileLeaseStore",
    "Grant",
    "HealthSource",
    "Lease",
    "LeaseStore",
    "MemoryLeaseStore",
    "PoolLease",
    "QueueFull",
    "RedisLeaseStore",
    "StoreSnapshot",
    "UpstreamHealth",
    "UpstreamLeaser",
    "UpstreamPool",
    "UpstreamServer",
    "Waiting",
    "slot_keys",
]


def __getattr__(name: str) -> Any:
    # the Redis store needs the optional ``redis`` extra: imported on first use, with a clear hint
    if name == "RedisLeaseStore":
        try:
            from .redis_store import RedisLeaseStore
        except ImportError as exc:  # pragma: no cover - the test extra installs redis
            raise ImportError("RedisLeaseStore needs the redis extra: "
                              "pip install 'asgi-audio-proxy[redis]'") from exc
        return RedisLeaseStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
