"""The stack most end-to-end modules run: settings for the doubles (any sender, no rate
limit), the web app on a loopback port, an in-process worker, and an exchange provider for
reading the venue as the trader's key sees it. A module with other needs defines its own
fixture of the same name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.exchange.factory import create_exchange_provider
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from tests.conftest import without_keyring
from tests.trading_stack import Maker, running_web, running_worker


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
) -> Settings:
    return make_settings(
        **telegram_env,
        **dydx_env,
        webhook_ip_allowlist="*",
        alert_rate_per_token=100_000,
        alert_rate_per_ip=100_000,
    )


@pytest.fixture
async def web(
    settings: Settings, live_sessionmaker: Maker, redis: Any
) -> AsyncIterator[TestClient]:
    # The web process never holds the keyring (#13); the worker below does.
    async with running_web(without_keyring(settings)) as client:
        yield client


@pytest.fixture
async def worker(settings: Settings, web: TestClient) -> AsyncIterator[None]:
    async with running_worker(settings):
        yield


@pytest.fixture
async def exchanges(
    settings: Settings, live_sessionmaker: Maker
) -> AsyncIterator[ExchangeProvider]:
    provider = create_exchange_provider(live_sessionmaker, settings)
    yield provider
    await provider.close()
