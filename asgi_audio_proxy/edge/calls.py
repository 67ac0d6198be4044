"""``POST /v1/realtime/calls``: a browser's SDP offer in, the answer out, a session per call.

Owns: :class:`RealtimeCalls`, the ASGI endpoint: the same admission as a WebSocket client
(origins, the key, the proxy's limits and queue), the offer read and checked, the peer
connection made and answered (host candidates only unless ICE servers are configured; the
advertised address behind NAT), and the call's session run by the proxy in a task of its own,
its place released when it ends. Every refusal is JSON shaped as OpenAI's errors are. Needs
the webrtc extra (aiortc): ``edge`` does not import it unless calls are served.
Must not: speak Realtime events (the dialect does) or keep a call past its session.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..dialects.realtime import RealtimeDialect, realtime_dialect
from ..session.stats import SessionStats
from ..webrtc import (
    CallRefused,
    CallTimeouts,
    Playout,
    WebRTCCall,
    WebRTCDialect,
    advertise,
    error_body,
    read_offer,
)
from .admission import Denied, authenticate_scope
from .middleware import AudioProxy, AudioProxyMiddleware

__all__ = ["RealtimeCalls", "WebRTCSettings", "add_calls_route"]

logger = logging.getLogger("asgi_audio_proxy.webrtc")

#: the rate of a call's audio inside the proxy (the Realtime dialect's ``audio/pcm``)
CALL_RATE_HZ = 24000


@dataclass(frozen=True, slots=True)
class WebRTCSettings:
    """How calls are made.

    Args:
        ice_servers: STUN or TURN URLs to gather candidates from (none: host candidates only).
        advertise_address: the address to put in the answer's candidates in place of the
            interface's own (a server behind a one-to-one NAT with its UDP ports forwarded).
        timeouts: how long a call may go without audio before it is over.
    """

    ice_servers: Sequence[str] = ()
    advertise_address: str | None = None
    timeouts: CallTimeouts = field(default_factory=CallTimeouts)


class RealtimeCalls:
    """The ASGI endpoint of WebRTC calls, beside a proxy's WebSocket paths (same pool, same limits).

    Args:
        proxy: the proxy whose admission, limits, pool and metrics calls share.
        settings: how calls are made.
        dialect: makes each call's Realtime dialect from the request (model, beta).
    """

    def __init__(self, proxy: AudioProxy, settings: WebRTCSettings = WebRTCSettings(), *,
                 dialect: Callable[..., RealtimeDialect] = realtime_dialect) -> None:
        self.proxy = proxy
        self.settings = settings
        self.dialect = dialect
        self.calls: dict[str, asyncio.Task[SessionStats | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        if request.method != "POST":
            response: Response = JSONResponse(error_body("Use POST with an SDP offer."), 405,
                                              headers={"Allow": "POST"})
        else:
            response = await self.answer(request)
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        """Admit a call, answer its offer and start its session; or refuse it."""
        proxy = self.proxy
        try:
            identity = await authenticate_scope(request.scope, proxy.authenticate,
                                                proxy.config.allowed_origins)
            offer = read_offer(request.headers.get("content-type", ""), *await _body(request))
            realtime = self.dialect(request.scope, proxy.config)
            address = proxy.reserve(request.scope)
        except Denied as denial:
            return _denied(denial)
        except CallRefused as refused:
            return JSONResponse(error_body(refused.message, code=refused.code, param=refused.param),
                                refused.status_code)
        try:
            if proxy.config.max_queue == 0 and await proxy.leaser.would_wait():
                raise Denied(503, "the model server is busy and no queue is kept",
                             retry_after_s=proxy.config.retry_after_s)
            call, sdp = await self._connect(offer.sdp)
        except Denied as denial:
            proxy.release(address)
            return _denied(denial)
        except CallRefused as refused:
            proxy.release(address)
            return JSONResponse(error_body(refused.message, code=refused.code, param=refused.param),
                                refused.status_code)
        except BaseException:
            proxy.release(address)
            raise
        if offer.session is not None:
            call.first(json.dumps({"type": "session.update", "session": offer.session}))
        task = asyncio.get_running_loop().create_task(
            self._run(call, WebRTCDialect(realtime, call.playout), identity, address))
        self.calls[call.id] = task
        return Response(sdp, 201, media_type="application/sdp",
                        headers={"Location": f"{request.url.path.rstrip('/')}/{call.id}"})

    async def _connect(self, sdp: str) -> tuple[WebRTCCall, str]:
        servers = [RTCIceServer(url) for url in self.settings.ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))  # [] keeps aiortc's STUN off
        call = WebRTCCall(pc, Playout(CALL_RATE_HZ), self.settings.timeouts)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            await pc.close()
            raise CallRefused(f"The offer cannot be answered: {exc}.") from exc
        except BaseException:
            await pc.close()
            raise
        call.start()
        answer = pc.localDescription.sdp
        address = self.settings.advertise_address
        return call, advertise(answer, address) if address else answer

    async def _run(self, call: WebRTCCall, dialect: WebRTCDialect, identity: object,
                   address: str) -> SessionStats | None:
        try:
            return await self.proxy.run_client(call, dialect, identity)
        except Exception:
            logger.exception("%s: the call's session failed", call.id)
            return None
        finally:
            self.proxy.release(address)
            self.calls.pop(call.id, None)
            await call.pc.close()


async def _body(request: Request) -> tuple[bytes, dict[str, str] | None]:
    """The offer's body: raw SDP, or the unified form's fields. A client that leaves before its
    body has arrived is refused like a bad offer (no one reads the answer; nothing is logged as
    the application's failure)."""
    try:
        if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            try:
                form = await request.form()
            except ClientDisconnect:
                raise
            except Exception as exc:  # python-multipart's errors, or its absence
                raise CallRefused(f"Invalid multipart body: {exc}.", param=None) from exc
            return b"", {name: value for name, value in form.items() if isinstance(value, str)}
        return await request.body(), None
    except ClientDisconnect:
        logger.info("a call's offer was cut off: the client left before its body arrived")
        raise CallRefused("The offer's body did not arrive: the client left.", param=None) from None


def _denied(denial: Denied) -> JSONResponse:
    kind = "invalid_request_error" if denial.status_code < 500 else "server_error"
    code = {401: "invalid_api_key", 403: "forbidden_origin", 429: "rate_limit_exceeded",
            503: "server_busy"}.get(denial.status_code, "denied")
    return JSONResponse(error_body(denial.message, error_type=kind, code=code), denial.status_code,
                        headers=denial.headers)


def add_calls_route(middleware: AudioProxyMiddleware, realtime_path: str,
                    settings: WebRTCSettings | None = None) -> RealtimeCalls:
    """Serve ``POST <realtime_path>/calls`` beside the middleware's WebSocket paths; its app
    must be a Starlette app (the route goes on its router)."""
    calls = RealtimeCalls(middleware.proxy, settings or WebRTCSettings())
    router = getattr(middleware.app, "router", None)
    if router is None:
        raise TypeError(f"expected a Starlette app under the middleware, got {middleware.app!r}")
    router.routes.append(Route(realtime_path.rstrip("/") + "/calls", calls, methods=["POST"]))
    return calls
