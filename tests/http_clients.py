"""The suite's HTTP clients: httpx's, all sharing one TLS context per process.

httpx reads the whole CA bundle for each client it makes (30 ms of CPU here), even for one that
only ever speaks plain HTTP to a loopback address, as every client here does. Made per test, per
session and per generated example, it was the largest cost no test chose in a profile of the
suite. The context is httpx's default one, made once.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx

__all__ = ["http_client"]


@functools.cache
def _tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def http_client(**options: Any) -> httpx.AsyncClient:
    """``httpx.AsyncClient(**options)``, with the process's TLS context."""
    return httpx.AsyncClient(verify=_tls(), **options)
