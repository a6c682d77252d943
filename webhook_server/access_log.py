"""An access logger that never writes secret path segments (webhook and link tokens)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from core.logs import get_logger, redact_text
from webhook_server.keys import REQUEST_ID


class RedactingAccessLogger(AbstractAccessLogger):
    """One structured event per request, with tokens in the path replaced by ``***``.

    aiohttp's default format logs the request line verbatim, which would write every
    trader's webhook token into the logs.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Log one finished request."""
        get_logger("tv2dydx.access").info(
            "http_request",
            method=request.method,
            path=redact_text(request.path_qs),
            status=response.status,
            duration_ms=round(time * 1000, 2),
            remote=request.remote,
            request_id=request.get(REQUEST_ID),
        )
