"""Typed application keys: every shared resource of the web app is reached through one."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.adapters.arq_queue import ArqJobQueue
from core.runtime.config import Settings
from core.security.client_ip import SenderPolicy
from core.security.ratelimit import RateLimiter
from core.services.intake import IntakeService
from core.services.key_entry import KeyEntryService
from core.services.wallet_link.service import WalletLinkService

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONMAKER = web.AppKey("sessionmaker", async_sessionmaker[AsyncSession])
REDIS = web.AppKey("redis", Redis)
# Set only while Redis answered at start-up: nudging workers is best effort.
JOB_QUEUE = web.AppKey("job_queue", ArqJobQueue)
WALLET_LINK = web.AppKey("wallet_link", WalletLinkService)
INTAKE = web.AppKey("intake", IntakeService)
SENDER_POLICY = web.AppKey("sender_policy", SenderPolicy)
LINK_LIMITER = web.AppKey("link_limiter", RateLimiter)
KEY_ENTRY = web.AppKey("key_entry", KeyEntryService)
KEY_LIMITER = web.AppKey("key_limiter", RateLimiter)
REQUEST_ID = web.RequestKey("request_id", str)
