"""The aiohttp application factory (the web server's composition root)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from core.config import Settings
from core.db.engine import create_engine, create_sessionmaker
from webhook_server.keys import ENGINE, REDIS, SESSIONMAKER, SETTINGS
from webhook_server.middlewares import request_context
from webhook_server.routes import health

# Webhook bodies are tiny; refuse anything large before reading it.
CLIENT_MAX_SIZE = 64 * 1024


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_engine(settings.database_url.get_secret_value())
    redis: Redis = Redis.from_url(
        settings.redis_url.get_secret_value(), socket_connect_timeout=2, socket_timeout=2
    )
    app[ENGINE] = engine
    app[SESSIONMAKER] = create_sessionmaker(engine)
    app[REDIS] = redis
    yield
    await redis.aclose()
    await engine.dispose()


def create_app(settings: Settings) -> web.Application:
    """Build the web application; resources open when it starts and close when it stops."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[request_context])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    app.add_routes(health.routes)
    return app
