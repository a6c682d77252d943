"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp import web

from core.runtime.health import readiness
from webhook_server.keys import ENGINE, REDIS

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Readiness: PostgreSQL and Redis reachable, schema at head; else 503 naming the part."""
    results = await readiness(request.app[ENGINE], request.app[REDIS])
    ok = all(result.ok for result in results)
    body: dict[str, object] = {
        "status": "ok" if ok else "unavailable",
        "checks": {result.name: {"ok": result.ok, "detail": result.detail} for result in results},
    }
    if not ok:
        body["failing"] = [result.name for result in results if not result.ok]
    return web.json_response(body, status=200 if ok else 503)
