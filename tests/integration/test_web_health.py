"""/healthz and /readyz of the web application."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from core.runtime.config import Settings
from tests.conftest import drop_database, make_database
from webhook_server.app import create_app


async def _client(settings: Settings) -> TestClient:
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


@pytest.fixture
async def healthy(make_settings: Callable[..., Settings]) -> AsyncIterator[TestClient]:
    client = await _client(make_settings())
    yield client
    await client.close()


async def test_healthz_is_200(healthy: TestClient) -> None:
    response = await healthy.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_is_200_with_postgres_redis_and_head(healthy: TestClient) -> None:
    response = await healthy.get("/readyz")
    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"postgres", "redis", "migrations"}


async def test_readyz_is_503_naming_redis_when_redis_is_unreachable(
    make_settings: Callable[..., Settings],
) -> None:
    client = await _client(make_settings(redis_url="redis://127.0.0.1:1/0"))
    try:
        response = await client.get("/readyz")
        body = await response.json()
    finally:
        await client.close()
    assert response.status == 503
    assert body["failing"] == ["redis"]
    assert "REDIS_URL" in body["checks"]["redis"]["detail"]


async def test_readyz_is_503_naming_migrations_on_an_unmigrated_database(
    make_settings: Callable[..., Settings],
) -> None:
    name = f"tv2dydx_empty_{secrets.token_hex(4)}"
    import asyncio

    url = await asyncio.to_thread(make_database, name)
    client = await _client(make_settings(database_url=url))
    try:
        response = await client.get("/readyz")
        body = await response.json()
    finally:
        await client.close()
        await asyncio.to_thread(drop_database, name)
    assert response.status == 503
    assert body["failing"] == ["migrations"]
    assert "tv2dydx migrate" in body["checks"]["migrations"]["detail"]


async def test_readyz_is_503_naming_postgres_when_it_is_unreachable(
    make_settings: Callable[..., Settings],
) -> None:
    client = await _client(make_settings(database_url="postgresql://x@127.0.0.1:1/none"))
    try:
        response = await client.get("/readyz")
        body = await response.json()
    finally:
        await client.close()
    assert response.status == 503
    assert "postgres" in body["failing"]
