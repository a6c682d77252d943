"""The wallet-link page and its two JSON calls.

``GET /link/{token}`` serves one self-contained page (inline script and style allowed by a
per-response CSP nonce; nothing third-party). The page asks the injected wallet for its
address and chain, fetches the message to sign from ``POST /link/{token}/message``, has the
wallet sign it and posts the signature to ``POST /link/{token}/verify``.
"""

from __future__ import annotations

import json
import secrets
from functools import lru_cache
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from core.security.crypto import token_hash
from core.security.ratelimit import Limit
from core.services.wallet_link.errors import (
    AddressTakenError,
    AlreadyLinkedError,
    InvalidInputError,
    LinkUnavailableError,
    RpcUnavailableError,
    WalletLinkError,
)
from webhook_server.keys import LINK_LIMITER, SENDER_POLICY, SETTINGS, WALLET_LINK

routes = web.RouteTableDef()

# A message is ~500 bytes and a signature 132; contract-wallet signatures can be a few KB.
MAX_BODY_BYTES = 20 * 1024

_STATUS: list[tuple[type[WalletLinkError], int]] = [
    (InvalidInputError, 400),
    (LinkUnavailableError, 404),
    (AlreadyLinkedError, 409),
    (AddressTakenError, 409),
    (RpcUnavailableError, 503),
]


@lru_cache(maxsize=1)
def _template() -> str:
    return resources.files("webhook_server").joinpath("static/link.html").read_text("utf-8")


def _csp(nonce: str | None) -> str:
    scripts = f"'nonce-{nonce}'" if nonce else "'none'"
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {scripts}",
            f"style-src {scripts}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            # Not embeddable anywhere: no clickjacking of the sign button.
            "frame-ancestors 'none'",
        ]
    )


def _secured(response: web.Response, nonce: str | None = None) -> web.Response:
    """Add the security headers every response of this feature carries."""
    headers = response.headers
    headers["Content-Security-Policy"] = _csp(nonce)
    # The token is in the path: never send it onwards, never keep it in a cache.
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cache-Control"] = "no-store"
    headers["Pragma"] = "no-cache"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
    return response


def _page(request: web.Request, *, ready: bool) -> web.Response:
    site = request.app[WALLET_LINK].site
    nonce = secrets.token_urlsafe(18)
    html = (
        _template()
        .replace("{{CSP_NONCE}}", nonce)
        .replace("{{STATE}}", "ready" if ready else "gone")
        .replace("{{CHAIN_ID}}", str(site.chain_id))
        .replace("{{CHAIN_NAME}}", escape(site.chain_name))
    )
    response = web.Response(
        text=html, content_type="text/html", charset="utf-8", status=200 if ready else 404
    )
    return _secured(response, nonce)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return _secured(web.json_response(body, status=status))


def _refusal(exc: WalletLinkError) -> web.Response:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 422)
    return _json({"ok": False, "error": exc.message, "code": exc.code}, status)


def _same_origin(request: web.Request) -> bool:
    """A browser's ``Origin`` (when sent) must be the public site's own."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    base = urlsplit(request.app[WALLET_LINK].site.base_url)
    return origin == f"{base.scheme}://{base.netloc}"


async def _json_body(request: web.Request, fields: dict[str, type]) -> dict[str, Any]:
    """The request's JSON object with exactly ``fields``, of those types.

    Raises:
        InvalidInputError: Wrong content type, too large, not JSON, or wrong fields.
    """
    if request.content_type != "application/json":
        raise InvalidInputError("Send JSON (Content-Type: application/json).")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise InvalidInputError("The request is too large.")
    raw = await request.read()  # bounded by the app's client_max_size, even when chunked
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInputError("The request is too large.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError("The request is not valid JSON.") from None
    if not isinstance(body, dict) or set(body) != set(fields):
        raise InvalidInputError(f"Send exactly these fields: {', '.join(fields)}.")
    for name, kind in fields.items():
        value = body[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InvalidInputError(f"The field {name} has the wrong type.")
    return body


async def _rate_limited(request: web.Request) -> int | None:
    """Charge the link's and the sender's buckets (before the token is even looked up);
    the seconds to wait when either is empty, else None."""
    settings = request.app[SETTINGS]
    address = request.app[SENDER_POLICY].resolve(
        request.remote, request.headers.getall("X-Forwarded-For", [])
    )
    decision = await request.app[LINK_LIMITER].check(
        [
            (
                "token",
                token_hash(request.match_info["token"]),  # never the token itself in Redis
                Limit.per_minute_with_burst(settings.link_rate_per_token),
            ),
            ("ip", str(address), Limit.per_minute_with_burst(settings.link_rate_per_ip)),
        ]
    )
    return None if decision.allowed else decision.retry_after


def _too_many(wait: int, *, page: bool) -> web.Response:
    """A 429 with ``Retry-After``: a plain page for the browser, JSON for the page's calls."""
    text = f"Too many requests; try again in {wait} s."
    response = (
        web.Response(text=text, status=429)
        if page
        else web.json_response({"ok": False, "error": text, "code": "rate_limited"}, status=429)
    )
    response.headers["Retry-After"] = str(wait)
    return _secured(response)


@routes.get("/link/{token}")
async def link_page(request: web.Request) -> web.Response:
    """The page, or a 404 page for an unknown, used or expired link (not saying which)."""
    if (wait := await _rate_limited(request)) is not None:
        return _too_many(wait, page=True)
    try:
        await request.app[WALLET_LINK].check_link(request.match_info["token"])
    except LinkUnavailableError:
        return _page(request, ready=False)
    return _page(request, ready=True)


@routes.post("/link/{token}/message")
async def link_message(request: web.Request) -> web.Response:
    """``{address, chainId}`` → ``{ok, message}``: the EIP-4361 text to sign."""
    if (wait := await _rate_limited(request)) is not None:
        return _too_many(wait, page=False)
    if not _same_origin(request):
        return _json({"ok": False, "error": "Cross-origin request refused."}, 403)
    try:
        body = await _json_body(request, {"address": str, "chainId": int})
        message = await request.app[WALLET_LINK].prepare(
            request.match_info["token"], body["address"], body["chainId"]
        )
    except WalletLinkError as exc:
        return _refusal(exc)
    return _json({"ok": True, "message": message})


@routes.post("/link/{token}/verify")
async def link_verify(request: web.Request) -> web.Response:
    """``{message, signature}`` → ``{ok, address}``, or ``{ok: false, error, code}``."""
    if (wait := await _rate_limited(request)) is not None:
        return _too_many(wait, page=False)
    if not _same_origin(request):
        return _json({"ok": False, "error": "Cross-origin request refused."}, 403)
    try:
        body = await _json_body(request, {"message": str, "signature": str})
        wallet = await request.app[WALLET_LINK].verify(
            request.match_info["token"], body["message"], body["signature"]
        )
    except WalletLinkError as exc:
        return _refusal(exc)
    return _json({"ok": True, "address": wallet.address})
