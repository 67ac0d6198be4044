"""The operator's settings of ``asgi-audio-proxy serve``: one table, read from argv and the environment.

Owns: :data:`SERVE_SETTINGS` (each setting's flag, environment variable, default, parser and
help), adding them to an ``argparse`` parser with the default and the variable in ``--help``,
and :func:`resolve_settings`, which takes each value from its flag, else from
``ASGI_AUDIO_PROXY_<NAME>``, else its default, into a typed :class:`ServeSettings`. Must not:
read ``os.environ`` itself (the caller passes the environment in), build the proxy, or exit.

Containers set variables, people type flags; both say the same things, and a flag wins, so a
one-off ``docker run ... serve --port 9000`` overrides the image's environment.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_WAIT_S, DEFAULT_RESUME_GRACE_S, DEFAULT_UPSTREAM_URL
from ..upstreams.registry import KIND_NAMES

__all__ = ["ENV_PREFIX", "SERVE_SETTINGS", "SUGGESTED_MAX_LOOP_LAG_S", "ServeSettings", "Setting",
           "SettingError", "add_settings", "resolve_settings"]

#: the shedding threshold ``docs/deployment.md`` suggests for a host of its own, not the
#: default. Measured: the admitted sessions' message latency p99 passes 20 ms while the smoothed
#: lag is still under 10 ms, but 200 clients opening at once lift it past 20 ms for a moment,
#: and at 0.02 such a burst got 16 of the 100 places a proxy held; at 0.05 it got all 100, and a
#: saturated loop still sheds. Off by default: a fresh process on a loaded host stalls its loop
#: for hundreds of ms while it warms up, and would refuse its first clients
SUGGESTED_MAX_LOOP_LAG_S = 0.05
#: every variable's name starts with this, then the flag's name in capitals
ENV_PREFIX = "ASGI_AUDIO_PROXY_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class SettingError(ValueError):
    """A value no setting can take; the message names the flag or variable and what it expects."""


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One operator setting.

    Attributes:
        name: the ``ServeSettings`` field; the flag is ``--`` plus it with dashes.
        parse: turns one string into the value, raising ``ValueError`` with what it expects.
        default: the value when neither flag nor variable is given.
        help: what it does (the default and the variable are appended in ``--help``).
        metavar: the placeholder in ``--help``.
        repeated: the flag may be given several times; the variable holds a list separated
            by spaces or commas.
        switch: an on/off setting: ``--name`` / ``--no-name``, the variable ``1`` or ``0``.
        default_text: how ``--help`` shows the default, when not by its value.
    """

    name: str
    parse: Callable[[str], Any] = str
    default: Any = None
    help: str
    metavar: str | None = None
    repeated: bool = False
    switch: bool = False
    default_text: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise ValueError(f"a whole number >= {minimum}")
        return value
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ValueError("a positive number of seconds")
    return value


def _lag(text: str) -> float:
    """Seconds, or 0.0 for ``off`` (``None`` would read as "not given" and bring the default)."""
    if text.lower() in _FALSE:
        return 0.0
    try:
        return _seconds(text)
    except ValueError:
        raise ValueError("a positive number of seconds, or 'off'") from None


def _grace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError("a number of seconds >= 0")
    return value


def _port(text: str) -> int:
    value = _whole(0)(text)
    if value > 65535:
        raise ValueError("a port number, 0 to 65535")
    return value


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not re.fullmatch(rf"(?:{'|'.join(schemes)})://[^/\s]+\S*", text):
            raise ValueError(f"a {' or '.join(s + '://' for s in schemes)} URL with a host")
        return text
    return parse


def _kind_name(text: str) -> str:
    if text not in KIND_NAMES:
        raise ValueError(" or ".join(KIND_NAMES))
    return text


def _path(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError("a path starting with '/'")
    return text


def _optional_path(text: str) -> str:
    if text.lower() in _FALSE:
        return ""  # this dialect is not served
    return _path(text)


def _barge_in(text: str) -> str:
    if text not in ("off", "control", "voice"):
        raise ValueError("off, control or voice")
    return text


def _replica(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise ValueError("a name of letters, digits, '-' and '_' (at most 64)")
    return text


def _switch(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError("1 or 0 (or true/false, yes/no, on/off)")


#: what ``serve`` takes, in ``--help`` order; ``docs/deployment.md`` has them in one table
SERVE_SETTINGS: tuple[Setting, ...] = (
    Setting(name="upstream", parse=_url("http", "https", "ws", "wss"), default=(DEFAULT_UPSTREAM_URL,),
            repeated=True, metavar="URL",
            help="model server URL (http://host:port; a realtime server also ws://host:port/v1/realtime); "
                 "repeat for a pool"),
    Setting(name="upstream_kind", parse=_kind_name, default="minicpm", metavar="KIND",
            help=f"what the model servers are: {' or '.join(KIND_NAMES)} (the MiniCPM-o web-demo "
                 "server, or any server that speaks the OpenAI Realtime API)"),
    Setting(name="upstream_api_key", metavar="KEY", default_text="none",
            help="a realtime server's API key, sent as Authorization: Bearer KEY"),
    Setting(name="upstream_model", metavar="MODEL", default_text="none",
            help="the model a realtime server is asked for (?model=MODEL)"),
    Setting(name="slots", parse=_whole(1), metavar="N", default_text="the kind's: 1",
            help="conversations each model server holds at once; the proxy never puts more on one"),
    Setting(name="upstreams_file", parse=Path, metavar="FILE", default_text="none",
            help="a TOML file of model servers, each with its own kind, slots and key (a mixed "
                 "pool; see docs/upstreams.md); replaces --upstream"),
    Setting(name="redis", parse=_url("redis", "rediss"), metavar="URL", default_text="none",
            help="share leases and the queue with every proxy process using this Redis "
                 "(redis://host:6379/0; needs the redis extra); without it, one conversation "
                 "per model server holds within this process only"),
    Setting(name="redis_prefix", default="asgi_audio_proxy:", metavar="PREFIX",
            help="key prefix in Redis; give each deployment its own"),
    Setting(name="max_queue", parse=_whole(0), default=DEFAULT_MAX_QUEUE, metavar="N",
            help="clients that may wait for a busy model server; 0 refuses the next one at the "
                 "handshake with 503 and Retry-After"),
    Setting(name="max_queue_wait", parse=_seconds, default=DEFAULT_MAX_QUEUE_WAIT_S,
            metavar="SECONDS", help="longest wait in that queue; then close 1013"),
    Setting(name="metrics", parse=_switch, default=False, switch=True,
            default_text="off",
            help="serve Prometheus metrics at GET <path>/metrics (needs the metrics extra)"),
    Setting(name="host", default="127.0.0.1", metavar="ADDRESS", help="address to bind"),
    Setting(name="port", parse=_port, default=8001, metavar="PORT", help="port to bind"),
    Setting(name="workers", parse=_whole(1), default=1, metavar="N",
            help="processes serving the port, one per core (Linux, SO_REUSEPORT); they share "
                 "leases through --redis, else through a file of their own, and one /metrics"),
    Setting(name="path", parse=_path, default="/audio_proxy", metavar="PATH",
            help="WebSocket path clients connect to"),
    Setting(name="realtime_path", parse=_optional_path, default="/v1/realtime", metavar="PATH",
            help="WebSocket path of the OpenAI Realtime dialect (clients set "
                 "websocket_base_url=ws://host:port/v1); 'off' to not serve it"),
    Setting(name="webrtc_advertise_address", metavar="ADDRESS", default_text="the interface's",
            help="the address WebRTC answers give browsers (POST <realtime-path>/calls) in place "
                 "of the interface's own: a server behind a one-to-one NAT, UDP ports forwarded"),
    Setting(name="webrtc_ice_server", repeated=True, metavar="URL", default_text="none",
            help="a STUN or TURN server WebRTC calls gather candidates from (stun:host:3478); "
                 "repeat for more; without one, host candidates only"),
    Setting(name="twilio_path", parse=_optional_path, default="/twilio", metavar="PATH",
            help="WebSocket path of the Twilio Media Streams dialect (a <Connect><Stream> url); "
                 "'off' to not serve it"),
    Setting(name="barge_in", parse=_barge_in, default="control", metavar="POLICY",
            help="how a client interrupts a reply: off, control (a stop message, or a Realtime "
                 "response.cancel) or voice (speaking over it; the vad extra makes it accurate)"),
    Setting(name="chunk_duration", parse=_seconds, metavar="SECONDS",
            default_text="the minicpm kind's: 0.2",
            help="audio gathered before it goes to a minicpm upstream, a multiple of 0.2 "
                 "(messages are always 200 ms; more only delays the reply)"),
    Setting(name="max_sessions", parse=_whole(1), metavar="N",
            default_text="no limit",
            help="live sessions admitted at once, queued ones included; more get 503"),
    Setting(name="max_loop_lag", parse=_lag, metavar="SECONDS", default_text="off",
            help="event-loop lag (smoothed over about a second) over which the process is "
                 "overloaded: new sessions get 503 and Retry-After until it is back under half "
                 f"({SUGGESTED_MAX_LOOP_LAG_S:g} suits a host of its own)"),
    Setting(name="allow_origin", repeated=True, metavar="ORIGIN",
            default_text="any",
            help="an allowed Origin (exact, wildcard like https://*.example.com, or *); repeat "
                 "for more"),
    Setting(name="token_file", parse=Path, metavar="FILE", default_text="none: no token needed",
            help="a file of bearer tokens, one per line; clients then need one (Authorization: "
                 "Bearer ... or ?token=...)"),
    Setting(name="shutdown_grace", parse=_seconds, default=5.0, metavar="SECONDS",
            help="how long live sessions get to end on SIGTERM"),
    Setting(name="resume_grace", parse=_grace, default=DEFAULT_RESUME_GRACE_S, metavar="SECONDS",
            help="how long a session whose connection was cut is held for its client to resume "
                 "(?resume=TOKEN); 0: a cut ends it"),
    Setting(name="replica", parse=_replica, metavar="NAME", default_text="host-pid-N",
            help="this process's name, the start of each resume token it issues (NAME.…), for a "
                 "load balancer to send a resume where its session is; with --workers, each "
                 "worker's is NAME-<index>"),
)


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """What ``serve`` was asked for, every value parsed (see :data:`SERVE_SETTINGS`)."""

    upstream: tuple[str, ...]
    upstream_kind: str
    upstream_api_key: str | None
    upstream_model: str | None
    slots: int | None
    upstreams_file: Path | None
    redis: str | None
    redis_prefix: str
    max_queue: int
    max_queue_wait: float
    metrics: bool
    host: str
    port: int
    workers: int
    path: str
    realtime_path: str
    webrtc_advertise_address: str | None
    webrtc_ice_server: tuple[str, ...] | None
    twilio_path: str
    barge_in: str
    chunk_duration: float | None
    max_sessions: int | None
    max_loop_lag: float | None
    allow_origin: tuple[str, ...] | None
    token_file: Path | None
    shutdown_grace: float
    resume_grace: float
    replica: str | None


def add_settings(parser: argparse.ArgumentParser,
                 settings: Sequence[Setting] = SERVE_SETTINGS) -> None:
    """Add each setting's flag; ``--help`` shows its default and its variable.

    Every flag defaults to ``None`` ("not given"), so :func:`resolve_settings` can tell a flag
    from the environment.
    """
    for setting in settings:
        shown = setting.default_text or _shown(setting.default)
        text = f"{setting.help} (default {shown}; env {setting.env})"
        if setting.switch:
            parser.add_argument(setting.flag, dest=setting.name, default=None,
                                action=argparse.BooleanOptionalAction, help=text)
        else:
            parser.add_argument(setting.flag, dest=setting.name, default=None,
                                action="append" if setting.repeated else "store",
                                type=_for_argparse(setting), metavar=setting.metavar, help=text)


def resolve_settings(args: argparse.Namespace, environ: Mapping[str, str],
                     settings: Sequence[Setting] = SERVE_SETTINGS) -> ServeSettings:
    """Each value from its flag, else its environment variable, else its default.

    Args:
        args: the parsed flags (from a parser :func:`add_settings` built).
        environ: the environment (``os.environ``).
        settings: the table.

    Raises:
        SettingError: a variable holds a value its setting cannot take (names the variable).
    """
    values: dict[str, Any] = {}
    for setting in settings:
        value = getattr(args, setting.name, None)
        if value is None and setting.env in environ:
            value = _from_env(setting, environ[setting.env])
        if value is None:
            value = setting.default
        if setting.repeated and value is not None:
            value = tuple(value)
        values[setting.name] = value
    return ServeSettings(**values)


def _from_env(setting: Setting, raw: str) -> Any:
    try:
        if setting.repeated:
            items = [item for item in re.split(r"[\s,]+", raw) if item]
            return [setting.parse(item) for item in items] or None
        if setting.switch:
            return _switch(raw.strip())
        return setting.parse(raw.strip()) if raw.strip() else None
    except ValueError as exc:
        raise SettingError(f"{setting.env}={raw!r}: expected {exc}") from exc


def _for_argparse(setting: Setting) -> Callable[[str], Any]:
    """The parser, with argparse's own one-line message: ``argument --x: expected ...``."""
    def parse(text: str) -> Any:
        try:
            return setting.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {exc}") from exc
    parse.__name__ = setting.name
    return parse


def _shown(default: object) -> str:
    if isinstance(default, tuple):
        return " ".join(str(item) for item in default)
    return f"{default:g}" if isinstance(default, float) else str(default)
