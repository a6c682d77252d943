"""The HTTP edge: how the server answers requests that never reach a route.

aiohttp answers malformed HTTP (a garbage request line, a bad chunk size, an oversized
header, a body that is not what its ``Content-Encoding`` says) from its protocol handler:
it logs each one at ERROR with a traceback (which Sentry would receive from anyone who can
reach the port), answers a body it cannot decode with a 500, and names its version in a
``Server`` header. Here each such request gets a 4xx with a short generic text, one
WARNING line without a traceback, and no version banner; real bugs still answer 500 and
are logged (and reported) as before.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    ContentEncodingError,
    DecompressSizeError,
    HttpProcessingError,
    LineTooLong,
)
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from core.runtime.logs import get_logger

# What every response says in its ``Server`` header (no framework, no version).
SERVER_NAME = "tv2dydx"


def client_error_status(exc: BaseException) -> int | None:
    """The 4xx a malformed request gets, or ``None`` when ``exc`` is not the client's fault.

    Args:
        exc: What the parser, or reading the body, raised.
    """
    if isinstance(exc, RequestPayloadError):
        # A body that failed to parse or decode, met while reading it (the parser's own
        # error, when it kept one, is the cause).
        cause = exc.__cause__
        return client_error_status(cause) if cause is not None else HTTPStatus.BAD_REQUEST
    if not isinstance(exc, HttpProcessingError):
        return None
    if isinstance(exc, DecompressSizeError):
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    if isinstance(exc, ContentEncodingError) and "install" in exc.message:
        # The parser refuses an encoding it has no decoder for (br, zstd) with advice to
        # install a package: for the sender that is an unsupported encoding.
        return HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    if isinstance(exc, LineTooLong):
        return HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    return exc.code if 400 <= exc.code < 500 else HTTPStatus.BAD_REQUEST


def _reason(exc: BaseException) -> str:
    """A short, fixed description of what was wrong (never the request's own bytes)."""
    if isinstance(exc, RequestPayloadError) and exc.__cause__ is not None:
        return _reason(exc.__cause__)
    if isinstance(exc, BadHttpMethod):
        return "not an HTTP request"
    if isinstance(exc, ContentEncodingError | DecompressSizeError):
        return "body does not match its Content-Encoding"
    return type(exc).__name__


class EdgeRequestHandler(RequestHandler):
    """aiohttp's protocol handler with the client's mistakes answered 4xx, quietly."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer a request that failed outside the routes (or raised from one)."""
        if isinstance(exc, ConnectionError):
            # The sender went away mid-request (aiohttp would answer 500 to no one and log
            # an ERROR): nobody to answer, nothing wrong here.
            get_logger("tv2dydx.edge").debug("http_client_gone", remote=request.remote)
            raise ConnectionError("client disconnected") from None
        refused = client_error_status(exc) if exc is not None else None
        if refused is None:
            response = super().handle_error(request, status, exc, message)
        else:
            get_logger("tv2dydx.edge").warning(
                "http_request_refused",
                status=refused,
                reason=_reason(exc) if exc is not None else "",
                remote=request.remote,
            )
            if request.writer.output_size > 0:  # as aiohttp: nothing more can be sent
                raise ConnectionError("response already started")
            phrase = HTTPStatus(refused).phrase
            response = web.Response(status=refused, text=f"{refused} {phrase}\n")
            response.force_close()
        response.headers["Server"] = SERVER_NAME
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """Log a failure; a client's malformed body met after the answer is one WARNING.

        (aiohttp drains an unread body after answering; a body that fails to decode then
        raised ``Unhandled exception`` with a traceback.)
        """
        exc = kw.get("exc_info")
        if isinstance(exc, BaseException) and client_error_status(exc) is not None:
            get_logger("tv2dydx.edge").warning(
                "http_body_refused", reason=_reason(exc), status=client_error_status(exc)
            )
            return
        super().log_exception(*args, **kw)


class EdgeServer(web.Server):
    """aiohttp's low-level server, creating :class:`EdgeRequestHandler` per connection."""

    def __call__(self) -> RequestHandler:
        """A protocol handler for one new connection."""
        return EdgeRequestHandler(self, loop=self._loop, **self._kwargs)


class EdgeRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose server is an :class:`EdgeServer`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return EdgeServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **server._kwargs,  # the handler settings the app chose
        )


async def edge_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: no version banner, and a ``Retry-After`` on every 429."""
    response.headers["Server"] = SERVER_NAME
    if response.status == HTTPStatus.TOO_MANY_REQUESTS:
        response.headers.setdefault("Retry-After", "60")
