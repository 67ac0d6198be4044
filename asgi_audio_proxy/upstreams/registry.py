"""The kinds of model server the proxy knows by name, for ``serve``, the demo and pool files.

Owns: :data:`KIND_NAMES` and :func:`named_kind`, which makes a kind from its name and the few
settings an operator gives on a command line or in a pool file (an API key, a model, slots).
Must not: be imported by the pool or the session (they take an ``UpstreamKind`` value); a kind's
own subpackage is imported only when that kind is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Literal

from .kind import UpstreamKind, origin_probe
from .minicpm.kind import MINICPM

__all__ = ["KIND_NAMES", "named_kind", "realtime_kind"]

#: ``minicpm``: the MiniCPM-o web-demo server (``model_server.py``); ``realtime``: any server that
#: speaks the OpenAI Realtime API (speech-to-speech, LocalAI, speaches, OpenAI, this proxy itself);
#: ``vllm-duplex``: vLLM-Omni serving MiniCPM-o 4.5 full duplex (``/v1/realtime?duplex=1``)
#: ``minicpm-demo``: the MiniCPM-o-Demo gateway (``gateway.py``) at ``/v1/realtime?mode=audio``
KIND_NAMES = ("minicpm", "realtime", "vllm-duplex", "minicpm-demo")


def realtime_kind(*, api_key: str | None = None, model: str | None = None, beta: bool = False,
                  slots: int = 1, turn_detection: Literal["server", "proxy"] = "server",
                  input_rate_hz: int | None = None, voice: str | None = None,
                  voices: Mapping[str, str] | None = None) -> UpstreamKind:
    """A server that speaks the OpenAI Realtime API (GA, or beta with ``beta=True``).

    It is probed by any HTTP answer from its origin (a Realtime server has no health route of
    its own) and may be probed while it holds conversations. ``slots`` is how many it takes at
    once: the protocol does not say, so the operator does. ``voice`` and ``voices``: see
    :class:`~asgi_audio_proxy.upstreams.realtime.RealtimeSettings` (a client's voice reaches the
    server only by a name ``voices`` gives it).
    """
    from .realtime import RealtimeSettings, realtime_upstream

    settings = RealtimeSettings(api_key=api_key, model=model, beta=beta, turn_detection=turn_detection,
                                voice=voice, voices=dict(voices or {}))
    if input_rate_hz is not None:
        settings = replace(settings, input_rate_hz=input_rate_hz)
    return UpstreamKind(name="realtime", factory=realtime_upstream(settings), slots=slots,
                        probe=origin_probe(), probe_while_leased=True,
                        schemes=("ws", "wss", "http", "https"), settings=settings)


def named_kind(name: str, *, api_key: str | None = None, model: str | None = None,
               slots: int | None = None, beta: bool = False) -> UpstreamKind:
    """The kind called ``name`` (one of :data:`KIND_NAMES`), with what the operator set.

    Raises:
        ValueError: an unknown name, or a setting this kind does not take (names both).
    """
    if name == "minicpm":
        for setting, value in (("API key", api_key), ("model", model), ("beta setting", beta)):
            if value:
                raise ValueError(f"the minicpm kind takes no {setting}: its server has none")
        return MINICPM.with_slots(slots)
    if name == "realtime":
        return realtime_kind(api_key=api_key, model=model, beta=beta, slots=slots or 1)
    if name == "vllm-duplex":
        for setting, value in (("API key", api_key), ("beta setting", beta)):
            if value:
                raise ValueError(f"the vllm-duplex kind takes no {setting}")
        from .vllm_duplex import DEFAULT_SLOTS, vllm_duplex_kind

        return vllm_duplex_kind(slots or DEFAULT_SLOTS, model=model)
    if name == "minicpm-demo":
        for setting, value in (("API key", api_key), ("model", model), ("beta setting", beta)):
            if value:
                raise ValueError(f"the minicpm-demo kind takes no {setting}: its gateway has none")
        from .minicpm_demo import minicpm_demo_kind

        return minicpm_demo_kind(slots=slots or 1)
    raise ValueError(f"unknown upstream kind {name!r}: expected one of {', '.join(KIND_NAMES)}")
