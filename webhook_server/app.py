"""The aiohttp application factory (the web server's composition root)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.adapters.arq_queue import ArqJobQueue
from core.adapters.telegram_webhook import webhook_path
from core.db.engine import create_engine, create_sessionmaker
from core.exchange.factory import create_key_verifier
from core.runtime.config import Settings
from core.runtime.logs import get_logger
from core.security.crypto import PublicSealer
from core.security.ratelimit import RateLimiter
from core.services.credentials import CredentialService
from core.services.key_entry import KeyEntryService
from core.services.wallet_link.service import WalletLinkService
from core.services.wallet_link.site import LinkSite
from webhook_server.edge import edge_headers
from webhook_server.intake import intake_context
from webhook_server.keys import (
    ENGINE,
    JOB_QUEUE,
    KEY_ENTRY,
    KEY_LIMITER,
    LINK_LIMITER,
    REDIS,
    SESSIONMAKER,
    SETTINGS,
    WALLET_LINK,
)
from webhook_server.middlewares import request_context
from webhook_server.routes import alerts, health, key, link, telegram

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


async def _wallet_link(app: web.Application) -> AsyncIterator[None]:
    # After _resources (it needs the sessionmaker). Without Redis the server still starts:
    # the worker's schedule delivers the link confirmation a few seconds later instead.
    settings = app[SETTINGS]
    queue: ArqJobQueue | None = None
    try:
        queue = await ArqJobQueue.connect(settings.redis_url.get_secret_value())
        app[JOB_QUEUE] = queue
    except (OSError, RedisError, TimeoutError) as exc:
        get_logger(__name__).warning("job_queue_unavailable", error=str(exc))
    bot_token = settings.bot_token.get_secret_value()
    app[WALLET_LINK] = WalletLinkService(
        app[SESSIONMAKER], LinkSite.from_settings(settings), queue=queue, bot_token=bot_token
    )
    # Per link and per address, like the alert routes' buckets (#13 part 4).
    app[LINK_LIMITER] = RateLimiter(app[REDIS], prefix="tv2dydx:rl:link")
    # The key form: the web never holds the keyring, it seals each accepted key to the
    # worker's public key, exactly as the bot's chat flow does (the same service).
    credentials = CredentialService(
        app[SESSIONMAKER], PublicSealer(settings.sealing_key), create_key_verifier(settings.dydx)
    )
    app[KEY_ENTRY] = KeyEntryService(
        app[SESSIONMAKER], settings.public_base_url, bot_token, credentials, queue=queue
    )
    app[KEY_LIMITER] = RateLimiter(app[REDIS], prefix="tv2dydx:rl:key")
    yield
    await credentials.close()
    if queue is not None:
        await queue.close()


def create_app(settings: Settings) -> web.Application:
    """Build the web application; resources open when it starts and close when it stops."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[request_context])
    app[SETTINGS] = settings
    app.on_response_prepare.append(edge_headers)
    app.cleanup_ctx.append(_resources)
    app.cleanup_ctx.append(_wallet_link)
    app.cleanup_ctx.append(intake_context)
    app.add_routes(health.routes)
    app.add_routes(link.routes)
    app.add_routes(key.routes)
    app.add_routes(alerts.routes)
    if settings.telegram_mode == "webhook" and settings.telegram_webhook_secret is not None:
        path = webhook_path(settings.telegram_webhook_secret.get_secret_value())
        app.router.add_post(path, telegram.receive_update)
    return app
