"""The demo never reaches a real service: what it refuses, and the environment it builds."""

from __future__ import annotations

import pytest

from demo.guard import NotOfflineError, check_environment, offline_problems, product_environment
from demo.stack import DemoError, database_name, redis_database

DOUBLES = {
    "TELEGRAM_API_BASE": "http://127.0.0.1:40001",
    "BOT_TOKEN": "7000000001:FAKE-simulated-demo-bot-token-000000",
    "PUBLIC_BASE_URL": "http://127.0.0.1:8091",
    "DYDX_NETWORK": "custom",
    "DYDX_INDEXER_URL": "http://127.0.0.1:40002",
    "DYDX_INDEXER_WS_URL": "ws://127.0.0.1:40002/v4/ws",
    "DYDX_NODE_URL": "127.0.0.1:40003",
    "DYDX_CHAIN_ID": "dydx-double-1",
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TELEGRAM_API_BASE", "https://api.telegram.org"),
        ("DYDX_INDEXER_URL", "https://indexer.dydx.trade"),
        ("DYDX_INDEXER_WS_URL", "wss://indexer.dydx.trade/v4/ws"),
        ("DYDX_NODE_URL", "dydx-ops-grpc.kingnodes.com:443"),
        ("ETHEREUM_RPC_URL", "https://mainnet.infura.io/v3/secret"),
        ("SENTRY_DSN", "https://key@o1.ingest.sentry.io/1"),
        ("PUBLIC_BASE_URL", "https://tv2dydx.example.com"),
        ("DYDX_NODE_URL", "10.0.0.5:9090"),
    ],
)
def test_a_variable_naming_a_real_service_is_refused_by_name_without_its_value(
    name: str, value: str
) -> None:
    with pytest.raises(NotOfflineError) as refused:
        check_environment({"PATH": "/usr/bin", name: value})
    assert len(refused.value.problems) == 1
    assert refused.value.problems[0].startswith(f"{name} points at a real service")
    assert value not in str(refused.value)  # a DSN or RPC URL may carry a secret


@pytest.mark.parametrize("network", ["mainnet", "testnet"])
def test_a_real_dydx_network_by_name_is_refused(network: str) -> None:
    assert offline_problems({"DYDX_NETWORK": network}) == [
        f"DYDX_NETWORK={network} selects a real dYdX network; the demo only trades on its "
        "simulated exchange: unset it"
    ]


def test_loopback_endpoints_and_an_empty_environment_are_offline() -> None:
    assert offline_problems(DOUBLES) == []
    assert offline_problems({}) == []
    assert offline_problems({"DYDX_NODE_URL": "[::1]:9090", "SENTRY_DSN": ""}) == []


def test_the_product_environment_takes_nothing_from_the_callers_but_harmless_variables() -> None:
    caller = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "BOT_TOKEN": "123456789:FAKE-token-of-an-outside-bot-0000000",
        "ENCRYPTION_KEYS": "real:key",
        "SENTRY_DSN": "https://key@o1.ingest.sentry.io/1",
        "ETHEREUM_RPC_URL": "https://mainnet.infura.io/v3/secret",
        "TELEGRAM_MODE": "webhook",
        "COVERAGE_PROCESS_START": "/src/pyproject.toml",
    }
    env = product_environment(DOUBLES, caller)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "COVERAGE_PROCESS_START": "/src/pyproject.toml",
        **DOUBLES,
    }


def test_a_forced_value_off_the_machine_or_a_missing_endpoint_stops_the_demo() -> None:
    with pytest.raises(NotOfflineError):
        product_environment({**DOUBLES, "DYDX_NODE_URL": "grpc.dydx.exchange:443"}, {})
    missing = dict(DOUBLES)
    del missing["TELEGRAM_API_BASE"]  # the product would fall back to api.telegram.org
    with pytest.raises(NotOfflineError, match="TELEGRAM_API_BASE must point at a double"):
        product_environment(missing, {})
    with pytest.raises(NotOfflineError, match="DYDX_NETWORK must be 'custom'"):
        product_environment({**DOUBLES, "DYDX_NETWORK": ""}, {})


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/tv2dydx",
        "postgresql://postgres@127.0.0.1:5432/postgres",
        'postgresql://postgres@127.0.0.1:5432/tv2dydx_demo";drop',
        "mysql://root@127.0.0.1/tv2dydx_demo",
    ],
)
def test_the_demo_only_empties_a_database_named_as_its_own(url: str) -> None:
    with pytest.raises(DemoError):
        database_name(url)


def test_demo_database_and_redis_names() -> None:
    assert database_name("postgresql+asyncpg://u:p@db:5432/tv2dydx_demo") == "tv2dydx_demo"
    assert redis_database("redis://127.0.0.1:6379/11") == 11
    for url in ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/0", "http://x/1"):
        with pytest.raises(DemoError):
            redis_database(url)
