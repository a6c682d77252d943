"""Request-scoped logging context."""

from __future__ import annotations

import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from webhook_server.keys import REQUEST_ID


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to every log line written while handling the request."""
    request_id = uuid.uuid4().hex[:16]
    request[REQUEST_ID] = request_id
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        return await handler(request)
