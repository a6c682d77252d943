"""What the browser pages (the wallet link, the key form) and their JSON calls share:
security headers, page rendering, strict JSON bodies, the same-origin check, rate limits.

Both pages are Telegram Mini Apps. Telegram opens them in its own web view on phones and
desktops, and in an iframe of ``https://web.telegram.org`` in the web clients, so a page
may be framed by that origin alone; the JSON answers by nobody.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from core.security.crypto import token_hash
from core.security.ratelimit import Limit, RateLimiter
from webhook_server.keys import SENDER_POLICY, SETTINGS

# A message is ~500 bytes and a signature 132; contract-wallet signatures can be a few KB;
# initData is under 1 KB and a key 66 characters.
MAX_BODY_BYTES = 20 * 1024
# Telegram's web clients embed Mini Apps in an iframe of this origin.
TELEGRAM_WEB = "https://web.telegram.org"


class BodyError(ValueError):
    """The request body is not the JSON object expected.

    Attributes:
        message: What to tell the sender.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@lru_cache(maxsize=8)
def static_text(name: str) -> str:
    """A file of ``webhook_server/static``."""
    return resources.files("webhook_server").joinpath(f"static/{name}").read_text("utf-8")


def _csp(nonce: str | None, *, page: bool) -> str:
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
            # No clickjacking: only Telegram's web client may frame a page (as a Mini App).
            f"frame-ancestors {TELEGRAM_WEB}" if page else "frame-ancestors 'none'",
        ]
    )


def secured(response: web.Response, nonce: str | None = None) -> web.Response:
    """Add the security headers every response of the pages carries (a page: a nonce)."""
    page = nonce is not None
    headers = response.headers
    headers["Content-Security-Policy"] = _csp(nonce, page=page)
    # The token is in the path: never send it onwards, never keep it in a cache.
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cache-Control"] = "no-store"
    headers["Pragma"] = "no-cache"
    headers["X-Content-Type-Options"] = "nosniff"
    if not page:  # a page's framing is the CSP's frame-ancestors (X-Frame-Options has no list)
        headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
    return response


def render_page(template: str, values: Mapping[str, str], *, status: int = 200) -> web.Response:
    """A page of ``static/<template>`` with ``{{NAME}}`` placeholders filled in, the shared
    styles (``static/page.css``) and Mini App script (``static/miniapp.js``) inlined, and a
    fresh CSP nonce.

    Shared assets are inlined rather than served: the page's ``<style>`` and ``<script>``
    carry its nonce, so the CSP allows nothing else (no ``'self'`` for styles or scripts).

    Args:
        template: The file name.
        values: Placeholder values, already HTML-escaped.
        status: The HTTP status.
    """
    nonce = secrets.token_urlsafe(18)
    html = (
        static_text(template)
        .replace("{{PAGE_CSS}}", static_text("page.css"))
        .replace("{{MINIAPP_JS}}", static_text("miniapp.js"))
    )
    for name, value in {**values, "CSP_NONCE": nonce}.items():
        html = html.replace("{{" + name + "}}", value)
    response = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
    return secured(response, nonce)


def json_answer(body: dict[str, Any], status: int = 200) -> web.Response:
    """A JSON answer with the security headers."""
    return secured(web.json_response(body, status=status))


def same_origin(request: web.Request) -> bool:
    """A browser's ``Origin`` (when sent) must be the public site's own."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    base = urlsplit(request.app[SETTINGS].public_base_url)
    return origin == f"{base.scheme}://{base.netloc}"


async def json_body(
    request: web.Request, fields: dict[str, type], optional: dict[str, type] | None = None
) -> dict[str, Any]:
    """The request's JSON object with exactly ``fields`` (plus any of ``optional``).

    Raises:
        BodyError: Wrong content type, too large, not JSON, or wrong fields.
    """
    optional = optional or {}
    if request.content_type != "application/json":
        raise BodyError("Send JSON (Content-Type: application/json).")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BodyError("The request is too large.")
    raw = await request.read()  # bounded by the app's client_max_size, even when chunked
    if len(raw) > MAX_BODY_BYTES:
        raise BodyError("The request is too large.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BodyError("The request is not valid JSON.") from None
    if (
        not isinstance(body, dict)
        or not set(fields) <= set(body)
        or not set(body) <= set(fields) | set(optional)
    ):
        raise BodyError(f"Send exactly these fields: {', '.join(fields)}.")
    for name, kind in {**fields, **optional}.items():
        value = body.get(name)
        if name in body and (not isinstance(value, kind) or isinstance(value, bool)):
            raise BodyError(f"The field {name} has the wrong type.")
    return body


async def rate_limited(request: web.Request, limiter: RateLimiter) -> int | None:
    """Charge the token's and the sender's buckets (before the token is even looked up);
    the seconds to wait when either is empty, else None."""
    settings = request.app[SETTINGS]
    address = request.app[SENDER_POLICY].resolve(
        request.remote, request.headers.getall("X-Forwarded-For", [])
    )
    decision = await limiter.check(
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


def too_many(wait: int, *, page: bool) -> web.Response:
    """A 429 with ``Retry-After``: a plain page for the browser, JSON for the page's calls."""
    text = f"Too many requests; try again in {wait} s."
    response = (
        web.Response(text=text, status=429)
        if page
        else web.json_response({"ok": False, "error": text, "code": "rate_limited"}, status=429)
    )
    response.headers["Retry-After"] = str(wait)
    return secured(response)
