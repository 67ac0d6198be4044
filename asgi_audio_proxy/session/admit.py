"""The post-handshake admission hook: what a client says after the handshake, checked by the app.

Owns: :data:`ParameterCheck` (``admit(parameters, identity)``, sync or async) and
:func:`admit_parameters`, which runs it for a session (a Twilio call's ``customParameters``
arrive only with its ``start``). Must not: decide anything itself; the hook does.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..errors import Denied

__all__ = ["ParameterCheck", "admit_parameters"]

#: ``admit(parameters, identity)``: returns the identity to keep, or raises ``Denied``; may be async
ParameterCheck = Callable[[Mapping[str, str], object], object | Awaitable[object]]


async def admit_parameters(parameters: Mapping[str, str], identity: object,
                           check: ParameterCheck) -> object:
    """Run the post-handshake hook; returns the identity to keep.

    Raises:
        Denied: the hook refused (or returned ``None``).
    """
    kept: Any = check(parameters, identity)
    if inspect.isawaitable(kept):
        kept = await kept
    if kept is None:
        raise Denied(401, "not authenticated")
    return kept
