"""``tv2dydx doctor``: check the whole installation and say in plain words what to fix."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import grpc
from redis.asyncio import Redis
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2, query_pb2_grpc

from core.db.engine import create_engine
from core.runtime.config import PROCESS_SECRETS, ConfigError, Settings, load_settings
from core.runtime.health import CheckResult, check_migrations, check_postgres, check_redis
from core.runtime.public_url import check_public_url

TIMEOUT = 5.0


async def check_telegram(settings: Settings) -> CheckResult:
    """The Bot API answers getMe for BOT_TOKEN."""
    url = f"{settings.telegram_api_base}/bot{settings.bot_token.get_secret_value()}/getMe"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
            http.get(url) as response,
        ):
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return CheckResult(
            "telegram",
            False,
            f"cannot reach the Bot API at {settings.telegram_api_base} ({type(exc).__name__}); "
            "check TELEGRAM_API_BASE and outbound network access",
        )
    if response.status == 401:
        return CheckResult(
            "telegram", False, "Telegram rejected BOT_TOKEN; copy it again from @BotFather"
        )
    if not isinstance(body, dict) or not body.get("ok"):
        return CheckResult("telegram", False, f"unexpected Bot API answer (HTTP {response.status})")
    username = body.get("result", {}).get("username", "?")
    return CheckResult("telegram", True, f"bot @{username}")


async def check_indexer(settings: Settings) -> CheckResult:
    """The dYdX Indexer answers /v4/height."""
    url = f"{settings.dydx.indexer_url}/v4/height"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
            http.get(url) as response,
        ):
            body = await response.json(content_type=None)
        height = int(body["height"])
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
        return CheckResult(
            "dydx-indexer",
            False,
            f"cannot read {url} ({type(exc).__name__}); check DYDX_NETWORK / DYDX_INDEXER_URL",
        )
    return CheckResult("dydx-indexer", True, f"height {height}")


async def check_node(settings: Settings) -> CheckResult:
    """The dYdX full node answers GetLatestBlock on the configured chain."""
    endpoints = settings.dydx
    channel = (
        grpc.aio.secure_channel(endpoints.node_url, grpc.ssl_channel_credentials())
        if endpoints.node_tls
        else grpc.aio.insecure_channel(endpoints.node_url)
    )
    try:
        stub = query_pb2_grpc.ServiceStub(channel)
        reply = await stub.GetLatestBlock(query_pb2.GetLatestBlockRequest(), timeout=TIMEOUT)
    except grpc.RpcError as exc:
        code = exc.code().name if hasattr(exc, "code") else "error"
        return CheckResult(
            "dydx-node",
            False,
            f"cannot reach the node at {endpoints.node_url} ({code}); "
            "check DYDX_NODE_URL and DYDX_NODE_TLS",
        )
    finally:
        await channel.close()
    header = reply.sdk_block.header if reply.HasField("sdk_block") else reply.block.header
    if header.chain_id and header.chain_id != endpoints.chain_id:
        return CheckResult(
            "dydx-node",
            False,
            f"the node serves chain {header.chain_id!r}, not {endpoints.chain_id!r}; "
            "fix DYDX_CHAIN_ID or DYDX_NODE_URL",
        )
    return CheckResult("dydx-node", True, f"chain {endpoints.chain_id}, height {header.height}")


async def run_checks(settings: Settings) -> list[CheckResult]:
    """Every check, the independent ones concurrently."""
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    redis: Redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        postgres, redis_result, telegram, indexer, node, public = await asyncio.gather(
            check_postgres(engine),
            check_redis(redis),
            check_telegram(settings),
            check_indexer(settings),
            check_node(settings),
            check_public_url(settings),
        )
        migrations = (
            await check_migrations(engine)
            if postgres.ok
            else CheckResult("migrations", False, "not checked: PostgreSQL is unreachable")
        )
    finally:
        await engine.dispose()
        await redis.aclose()
    return [postgres, migrations, redis_result, telegram, indexer, node, *public]


def doctor(echo: Callable[[str], None] = print) -> int:
    """Run every check and print one line each.

    Returns:
        0 when everything is usable, 1 otherwise.
    """
    try:
        settings = load_settings()
    except ConfigError as exc:
        echo("✗ configuration:")
        for problem in exc.problems:
            echo(f"  - {problem}")
        echo("Fix these in the environment or in .env (see .env.example), then run doctor again.")
        return 1
    echo(f"✓ configuration (dYdX {settings.dydx.network}, Telegram {settings.telegram_mode})")
    # Which secret each process needs (only the worker holds the keyring). Informational:
    # the bot's host should lack ENCRYPTION_KEYS, so "cannot run here" is not a failure.
    for process, secrets in PROCESS_SECRETS.items():
        needs = ", ".join(secrets) or "no key secret"
        if process in ("bot", "web"):
            needs += " (derived from ENCRYPTION_KEYS when only that is set)"
        if settings.problems_for(process):
            echo(f"- {process}: needs {needs}, not set here (this environment cannot run it)")
        else:
            echo(f"✓ {process}: needs {needs}, set")
    results = asyncio.run(run_checks(settings))
    for result in results:
        echo(f"{'✓' if result.ok else '✗'} {result.name}: {result.detail}")
    return 0 if all(result.ok for result in results) else 1
