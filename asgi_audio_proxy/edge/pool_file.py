"""A pool of model servers of several kinds, read from a small TOML file (``serve --upstreams-file``).

Owns: the file's one shape and its checks, every message naming the file and the entry::

    [[upstream]]
    url = "http://gpu-1:32550"            # the MiniCPM-o web-demo server (kind "minicpm", the default)

    [[upstream]]
    url = "ws://gpu-2:8000/v1/realtime"
    kind = "realtime"
    slots = 4                             # conversations it holds at once (default: the kind's)
    api_key_env = "GPU2_KEY"              # the key from this variable (or api_key = "...")
    model = "minicpm-o"

Must not: open the servers or the pool (it returns :class:`~asgi_audio_proxy.pool.UpstreamServer`
entries), or read the environment other than through the ``environ`` it is given.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..pool.pool import UpstreamServer
from ..upstreams.registry import named_kind

__all__ = ["read_pool_file"]

_KEYS = frozenset({"url", "kind", "slots", "api_key", "api_key_env", "model", "beta"})


def read_pool_file(path: Path, environ: Mapping[str, str]) -> list[UpstreamServer]:
    """The servers ``path`` lists, each with its kind made from its entry.

    Raises:
        ValueError: an unreadable file, an entry of the wrong shape, an unknown kind or key, or
            a value its kind refuses; the message names the file and the entry's number.
    """
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the pool file: {exc}") from exc
    entries = document.get("upstream")
    if set(document) != {"upstream"} or not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected one or more [[upstream]] tables and nothing else")
    return [_server(path, number, entry, environ) for number, entry in enumerate(entries, 1)]


def _server(path: Path, number: int, entry: Any, environ: Mapping[str, str]) -> UpstreamServer:
    where = f"{path}, upstream #{number}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a table")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    url, kind_name, slots = entry.get("url"), entry.get("kind", "minicpm"), entry.get("slots")
    if not isinstance(url, str) or not isinstance(kind_name, str):
        raise ValueError(f"{where}: expected url (and kind) as strings")
    if slots is not None and (type(slots) is not int or slots < 1):
        raise ValueError(f"{where}: invalid slots={slots!r}: expected a whole number >= 1")
    api_key = entry.get("api_key")
    if "api_key_env" in entry:
        if api_key is not None:
            raise ValueError(f"{where}: give api_key or api_key_env, not both")
        api_key = environ.get(str(entry["api_key_env"]))
        if not api_key:
            raise ValueError(f"{where}: the variable {entry['api_key_env']} named by api_key_env "
                             "is not set")
    try:
        kind = named_kind(kind_name, api_key=api_key, model=entry.get("model"), slots=slots,
                          beta=bool(entry.get("beta", False)))
        return UpstreamServer(kind.check_url(url), kind)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
