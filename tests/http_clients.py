"""The suite's HTTP clients: httpx's, all sharing one TLS context per process.

httpx reads the whole CA bundle for each client it makes (20 to 40 ms of CPU), even for one
that only ever speaks plain HTTP to a loopback address, as every client here does. Made per
test, per session and per generated example, that was about 40 s of the suite's CPU: a tenth of
it. The context is httpx's default one, made once.
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
