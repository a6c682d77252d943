"""Request-scoped logging context."""

from __future__ import annotations

import uuid
from http import HTTPStatus

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError

from webhook_server.edge import client_error_status
from webhook_server.keys import REQUEST_ID

# The answers a body's mistakes get (see webhook_server.edge.client_error_status).
_REFUSALS: dict[int, type[web.HTTPClientError]] = {
    HTTPStatus.BAD_REQUEST: web.HTTPBadRequest,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: web.HTTPUnsupportedMediaType,
}


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to every log line written while handling the request.

    A body that fails to parse or decode while a route reads it is the sender's mistake:
    it answers its 4xx here, inside the application, so error trackers watching the app
    (Sentry's aiohttp integration reports any other exception a handler raises) never see
    it. (The protocol handler logs it once, when it drains the rest of the body.)
    """
    request_id = uuid.uuid4().hex[:16]
    request[REQUEST_ID] = request_id
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            return await handler(request)
        except (RequestPayloadError, HttpProcessingError) as exc:
            refusal = _REFUSALS.get(client_error_status(exc) or 400, web.HTTPBadRequest)
            raise refusal(headers={"Connection": "close"}) from None
