"""Optional Prometheus metrics: what an operator watches on a proxy in front of several GPUs.

Owns: :class:`ProxyMetrics` (its own registry, so two proxies in one process never collide),
the client wrapper that counts bytes, the turn timer fed with neutral events, and the ASGI
endpoint that serves the text format. ``prometheus_client`` is imported only when a
``ProxyMetrics`` is made, so the core runs without it (``pip install asgi-audio-proxy[metrics]``).
Must not: decide anything, or be required by any other module.

Each replica reports its own view; sum over replicas for the deployment (a lease or a queued
client is counted by the replica whose client it is). The workers of ``serve --workers N`` share
one view: each writes its values to ``multiprocess_dir`` (``prometheus_client``'s multiprocess
mode) and a scrape of any of them reads every worker's, counters and gauges summed (a model
server counts as healthy while every worker finds it so).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from starlette.types import ASGIApp

from .dialects.connection import ClientConnection
from .events import AudioIn, ReplyAudio, ReplyEnded, ReplyStarted, ReplyText

__all__ = ["LATENCY_BUCKETS_S", "WAIT_BUCKETS_S", "EndedSession", "MeteredClient", "ProxyMetrics",
           "TurnTimer"]

#: end of speech to first reply spans VAD delay (about 1 s, section 5.2) plus the model's start
LATENCY_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0)
#: queue waits run from nothing to the configured wait limit (minutes)
WAIT_BUCKETS_S = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class EndedSession(Protocol):
    """What the metrics read of a session's totals (a :class:`~asgi_audio_proxy.session.SessionStats`)."""

    close_code: int | None


class ProxyMetrics:
    """Counters, gauges and histograms for one proxy (one replica).

    Args:
        namespace: the prefix of every metric name.
        multiprocess_dir: the directory the processes of one server share their values in;
            ``PROMETHEUS_MULTIPROC_DIR`` must name it before ``prometheus_client`` is imported.

    Raises:
        ModuleNotFoundError: ``prometheus_client`` is not installed (the ``metrics`` extra).
        RuntimeError: ``multiprocess_dir`` given, but ``prometheus_client`` keeps values in memory.
    """

    def __init__(self, namespace: str = "audio_proxy", *,
                 multiprocess_dir: str | os.PathLike[str] | None = None) -> None:
        prom = importlib.import_module("prometheus_client")
        self._prom = prom
        self.multiprocess_dir = multiprocess_dir
        if multiprocess_dir is not None and not getattr(prom.values.ValueClass, "_multiprocess", False):
            raise RuntimeError("shared metrics need PROMETHEUS_MULTIPROC_DIR set before "
                               "prometheus_client is imported")
        self.registry = prom.CollectorRegistry()
        kw: dict[str, Any] = {"namespace": namespace, "registry": self.registry}
        # how a gauge adds up over processes (ignored by one process alone): live ones only
        live_sum: dict[str, Any] = {**kw, "multiprocess_mode": "livesum"}
        self.live_sessions = prom.Gauge("live_sessions", "Client connections open now", **live_sum)
        self.sessions = prom.Counter("sessions", "Sessions ended, by close code", ["code"], **kw)
        self.shed_sessions = prom.Counter("shed_sessions", "Handshakes refused (503) because the "
                                          "process could not keep up: event-loop lag over "
                                          "max_loop_lag_s", **kw)
        self.queue_length = prom.Gauge("queue_length", "Clients of this replica waiting", **live_sum)
        self.queue_wait = prom.Histogram("queue_wait_seconds", "Time from joining the queue to "
                                         "leaving it, by outcome", ["outcome"],
                                         buckets=WAIT_BUCKETS_S, **kw)
        self.leases = prom.Gauge("upstream_leases", "Leases held by this replica", ["upstream"],
                                 **live_sum)
        self.healthy = prom.Gauge("upstream_healthy", "1 while the upstream is in the pool",
                                  ["upstream"], **kw, multiprocess_mode="livemin")
        self.upstream_errors = prom.Counter("upstream_errors", "Sessions or health checks that "
                                            "failed on the upstream", ["upstream", "source"], **kw)
        self.resumes = prom.Counter("resumes", "Reconnects with ?resume=<token> after a cut: "
                                    "resumed (the session took the new connection) or refused "
                                    "(resume_failed, 1008)", ["outcome"], **kw)
        self.bytes_in = prom.Counter("client_received_bytes", "Bytes of frames from clients", **kw)
        self.bytes_out = prom.Counter("client_sent_bytes", "Bytes of messages to clients", **kw)
        self.turn_latency = prom.Histogram("turn_latency_seconds", "From a client's last audio "
                                           "frame to the first message of the reply",
                                           buckets=LATENCY_BUCKETS_S, **kw)

    @contextlib.contextmanager
    def track(self, client: ClientConnection) -> Iterator[MeteredClient]:
        """Count one session: live while inside; yields the client to give the session."""
        self.live_sessions.inc()
        try:
            yield MeteredClient(client, self)
        finally:
            self.live_sessions.dec()

    def session_ended(self, stats: EndedSession) -> None:
        """An ``on_end`` callback: counts the session by its close code."""
        self.sessions.labels(code=str(stats.close_code)).inc()

    def asgi_app(self) -> ASGIApp:
        """The scrape endpoint (Prometheus text format), an ASGI app to mount or route to."""
        app: ASGIApp = self._prom.make_asgi_app(registry=self._scraped())
        return app

    def exposition(self) -> str:
        """The current values in the Prometheus text format (every process's, when shared)."""
        text: bytes = self._prom.generate_latest(self._scraped())
        return text.decode()

    def _scraped(self) -> Any:
        if self.multiprocess_dir is None:
            return self.registry
        registry = self._prom.CollectorRegistry()
        multiprocess = importlib.import_module("prometheus_client.multiprocess")
        multiprocess.MultiProcessCollector(registry, path=os.fspath(self.multiprocess_dir))
        return registry


class MeteredClient:
    """A :class:`ClientConnection` that counts bytes both ways.

    Args:
        client: the connection to wrap.
        metrics: where the counts go.
    """

    def __init__(self, client: ClientConnection, metrics: ProxyMetrics) -> None:
        self._client = client
        self._metrics = metrics

    async def accept(self, subprotocol: str | None = None) -> None:
        await self._client.accept(subprotocol)

    async def receive(self) -> bytes | str:
        frame = await self._client.receive()
        self._metrics.bytes_in.inc(len(frame))
        return frame

    async def send(self, message: bytes | str) -> None:
        await self._client.send(message)
        self._metrics.bytes_out.inc(len(message))

    async def close(self, code: int, reason: str = "") -> None:
        await self._client.close(code, reason)


class TurnTimer:
    """Times each turn from the session's events: from the last client audio to the reply's start.

    Told of every event the session receives from its client and sends to it (in any dialect);
    a reply's end closes the turn, so the next reply is timed afresh.

    Args:
        metrics: where the latencies go.
        clock: monotonic seconds.
    """

    def __init__(self, metrics: ProxyMetrics, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._last_audio_at: float | None = None
        self._in_reply = False

    def __call__(self, event: object) -> None:
        if isinstance(event, AudioIn):
            self._last_audio_at = self._clock()
        elif isinstance(event, ReplyEnded):
            self._in_reply = False
        elif isinstance(event, ReplyStarted | ReplyText | ReplyAudio) and not self._in_reply:
            self._in_reply = True
            if self._last_audio_at is not None:
                self._metrics.turn_latency.observe(self._clock() - self._last_audio_at)
