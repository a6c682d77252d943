"""An access logger that never writes secret path segments (webhook and link tokens)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from core.runtime.logs import get_logger, redact_text
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


class IntakeAccessLogger(RedactingAccessLogger):
    """The web server's access log: as :class:`RedactingAccessLogger`, except for alerts.

    A ``200`` from ``POST /hook/{token}`` is already logged by the intake itself
    (``alert_accepted`` or ``alert_duplicate``, with the request id), and a second line
    per alert costs about as much CPU as the rest of its handling at a thousand alerts a
    second. Every other answer of the hook, and every other route, is logged as before.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Log one finished request, unless it is an acknowledged alert."""
        if response.status == 200 and request.path.startswith("/hook/"):
            return
        super().log(request, response, time)
