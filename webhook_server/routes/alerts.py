"""``POST /hook/{token}``: TradingView alerts in, one service call, one HTTP answer.

The route resolves the client address and applies the IP allowlist (403), reads at most
4 KiB of body (413), and hands the rest to :class:`core.services.intake.IntakeService`.
An unknown token answers exactly like an unknown route.
"""

from __future__ import annotations

from aiohttp import web

from core.alerts.decode import MAX_BODY_BYTES
from core.runtime.config import Settings
from core.services.intake import IntakeResult, Verdict
from webhook_server.edge import retry_after
from webhook_server.keys import INTAKE, SENDER_POLICY, SETTINGS

routes = web.RouteTableDef()

_STATUS: dict[Verdict, int] = {
    Verdict.ACCEPTED: 200,
    Verdict.DUPLICATE: 200,
    Verdict.BAD_BODY: 400,
    Verdict.BAD_PASSPHRASE: 401,
    Verdict.INVALID: 422,
    Verdict.STALE: 422,
    Verdict.RATE_LIMITED: 429,
    Verdict.PAUSED: 409,
    Verdict.UNAVAILABLE: 503,
}


def _refused(status: int, error: str, **extra: object) -> web.Response:
    return web.json_response({"status": "rejected", "error": error, **extra}, status=status)


async def _read_capped(request: web.Request) -> bytes | None:
    """The body, or ``None`` as soon as it exceeds :data:`MAX_BODY_BYTES` (chunked too)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(MAX_BODY_BYTES + 1 - size):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(result: IntakeResult, settings: Settings) -> web.Response:
    if result.verdict is Verdict.UNKNOWN_TOKEN:
        raise web.HTTPNotFound()  # the same answer as an unknown route
    if result.verdict is Verdict.ACCEPTED:
        return web.json_response({"status": "accepted", "id": result.alert_id})
    if result.verdict is Verdict.DUPLICATE:
        return web.json_response({"status": "duplicate"})
    status = _STATUS[result.verdict]
    if result.verdict is Verdict.INVALID:
        return _refused(status, "invalid alert", fields=dict(result.errors))
    response = _refused(status, result.verdict.value, reason=result.reason)
    if result.verdict is Verdict.RATE_LIMITED:
        # A token comes back after a minute / rate; the slower bucket is the safe wait.
        slower = min(settings.alert_rate_per_token, settings.alert_rate_per_ip)
        response.headers["Retry-After"] = retry_after(slower)
    return response


@routes.post("/hook/{token}")
async def receive_alert(request: web.Request) -> web.Response:
    """Receive one TradingView alert."""
    policy = request.app[SENDER_POLICY]
    address = policy.resolve(request.remote, request.headers.getall("X-Forwarded-For", []))
    if not policy.allows(address):
        return _refused(403, "forbidden")
    body = await _read_capped(request)
    if body is None:
        return _refused(413, "body too large", limit=MAX_BODY_BYTES)
    result = await request.app[INTAKE].receive(request.match_info["token"], body, address)
    return _answer(result, request.app[SETTINGS])
