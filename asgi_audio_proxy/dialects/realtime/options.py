"""The Realtime session in effect, and the model options it stands for as they are negotiated.

Owns: :class:`SessionOptions`: the effective session (what ``session.updated`` shows), the
library options the upstream has or is getting, the updates waiting for their answer (applied;
kept, the session before shown again with what is not fixed taken; or refused, their options
forgotten), which options the operator lets a client set (``client_option_keys``), and the text
of system and developer items, folded in after the instructions before the first audio.
Must not: build events or frames, decode audio, or know the upstream.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from ...config import ProxyConfig
from . import session_config as sc
from .requests import keep_fixed
from .wire import RealtimeRequestError

__all__ = ["INSTRUCTIONS", "SessionOptions"]

Json = dict[str, Any]
logger = logging.getLogger("asgi_audio_proxy.dialects.realtime")

#: the library's name for the session's ``instructions``
INSTRUCTIONS = "assistantPrompt"


class SessionOptions:
    """One connection's session and its options.

    Args:
        config: the proxy's settings (which options a client may set).
        session: the session the connection opens with.
    """

    def __init__(self, config: ProxyConfig, session: Json) -> None:
        self._config = config
        #: the session in effect, as ``session.created`` and ``session.updated`` show it
        self.session = session
        self._wanted = sc.library_options(session)  # what the upstream has or is getting
        self._pending: deque[Json] = deque()  # updates waiting for their answer
        self._folded: list[str] = []  # system and developer items' text, after the instructions

    @property
    def is_waiting(self) -> bool:
        """An update's options went to the upstream, and its answer has not come back."""
        return bool(self._pending)

    def update(self, new: Json, event_id: str | None) -> dict[str, Any]:
        """Put ``new`` (the session a ``session.update`` asks for) in effect; returns the options
        to send the upstream, waiting for their answer (none: ``session.updated`` goes at once).

        Raises:
            RealtimeRequestError: new instructions, which this server does not let clients set.
        """
        changed = self._changed(new)
        if INSTRUCTIONS in changed and INSTRUCTIONS not in self._config.client_option_keys:
            raise RealtimeRequestError("This server does not let clients set 'instructions'.",
                                       param="session.instructions", code="unsupported_parameter",
                                       event_id=event_id)
        # a voice or threshold the operator keeps to itself is shown but not applied
        changed = {key: value for key, value in changed.items() if key in self._config.client_option_keys}
        before, self.session = self.session, new
        if changed:
            # the session in effect before, should the upstream keep it
            self._pending.append({"event_id": event_id, "options": changed, "before": before,
                                  "was": {key: self._wanted.get(key) for key in changed}})
            self._wanted.update(changed)
        return changed

    def fold(self, text: str, *, heard_audio: bool) -> dict[str, Any]:
        """System or developer text, taken after the session's instructions; returns the
        instructions to send the upstream (none if they do not change, or cannot now)."""
        self._folded.append(text)
        changed = self._changed(self.session)
        if INSTRUCTIONS not in changed:
            return {}
        if INSTRUCTIONS not in self._config.client_option_keys or heard_audio:
            logger.info("a system item's text is not applied: %s", "the model already heard audio"
                        if heard_audio else "this server keeps its instructions")
            return {}
        self._wanted[INSTRUCTIONS] = changed[INSTRUCTIONS]
        return {INSTRUCTIONS: changed[INSTRUCTIONS]}

    def applied(self) -> bool:
        """The upstream applied the oldest update waiting; whether there was one."""
        if not self._pending:
            return False
        self._pending.popleft()
        return True

    def kept(self, reason: str) -> bool:
        """The upstream kept the options in effect instead of the oldest update's: the session
        shows them again (``reason`` goes to the log); whether there was an update waiting."""
        if not self._pending:
            return False
        self._undo(self._pending.popleft(), reason)
        return True

    def refused(self) -> str | None:
        """The upstream refused the oldest update waiting (there must be one): the session shows
        the options in effect again, as when they are kept; returns the event id of its
        ``session.update``."""
        failed = self._pending.popleft()
        self._undo(failed, "the upstream refused them")
        event_id: str | None = failed["event_id"]
        return event_id

    def _undo(self, update: dict[str, Any], reason: str) -> None:
        """``update``'s options did not take: shown and wanted are what was in effect before it."""
        self.session = keep_fixed(update["before"], self.session, update["options"], reason)
        for key, value in update["was"].items():
            if value is None:
                self._wanted.pop(key, None)
            else:
                self._wanted[key] = value

    def _changed(self, session: Json) -> dict[str, Any]:
        """The library options ``session`` (with the folded items' text) asks for that differ
        from what the upstream has or is getting."""
        options = sc.library_options(session)
        if self._folded:
            own = options.get(INSTRUCTIONS)
            options[INSTRUCTIONS] = "\n\n".join([own, *self._folded] if own else self._folded)
        return {key: value for key, value in options.items() if self._wanted.get(key) != value}
