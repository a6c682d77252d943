"""``tv2dydx doctor`` against the real services and the Telegram and dYdX doubles."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.conftest import drop_database, make_database
from tests.e2e.test_cli import bare_env, run


async def test_doctor_is_green_when_everything_answers(
    base_env: dict[str, str], telegram_env: dict[str, str], dydx_env: dict[str, str]
) -> None:
    env = bare_env({**base_env, **telegram_env, **dydx_env})
    result = await asyncio.to_thread(run, ["doctor"], env, 60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name in (
        "configuration",
        "postgres",
        "migrations",
        "redis",
        "telegram",
        "dydx-indexer",
        "dydx-node",
    ):
        assert any(line.startswith(f"✓ {name}") for line in lines), result.stdout
    assert "bot @tv2dydx_test_bot" in result.stdout
    assert "chain localdydxprotocol" in result.stdout


async def test_doctor_names_what_is_unreachable_and_how_to_fix_it(
    base_env: dict[str, str],
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    dydx_env: dict[str, str],
) -> None:
    telegram_double.set_down(True)
    dydx_double.set_indexer_down(True)
    env = bare_env(
        {
            **base_env,
            **dydx_env,
            "TELEGRAM_API_BASE": telegram_double.base_url,
            "BOT_TOKEN": "987654321:unknown-token-unknown-token-unknown-00",
            "DYDX_NODE_URL": "127.0.0.1:1",
            "REDIS_URL": "redis://127.0.0.1:1/0",
        }
    )
    result = await asyncio.to_thread(run, ["doctor"], env, 60)
    assert result.returncode == 1
    out = result.stdout
    assert "✓ postgres" in out
    assert "✗ redis" in out
    assert "REDIS_URL" in out
    assert "✗ telegram" in out
    assert "✗ dydx-indexer" in out
    assert "DYDX_INDEXER_URL" in out
    assert "✗ dydx-node" in out
    assert "DYDX_NODE_URL" in out
    assert "Traceback" not in out + result.stderr


@pytest.mark.parametrize("chain_id", ["dydx-mainnet-1"])
async def test_doctor_spots_a_node_of_another_chain(
    base_env: dict[str, str],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
    chain_id: str,
) -> None:
    env = bare_env({**base_env, **telegram_env, **dydx_env, "DYDX_CHAIN_ID": chain_id})
    result = await asyncio.to_thread(run, ["doctor"], env, 60)
    assert result.returncode == 1
    assert "serves chain 'localdydxprotocol', not 'dydx-mainnet-1'" in result.stdout


async def test_doctor_reports_a_rejected_bot_token(
    base_env: dict[str, str], telegram_double: TelegramDouble, dydx_env: dict[str, str]
) -> None:
    env = bare_env(
        {
            **base_env,
            **dydx_env,
            "TELEGRAM_API_BASE": telegram_double.base_url,
            "BOT_TOKEN": "987654321:unknown-token-unknown-token-unknown-00",
        }
    )
    result = await asyncio.to_thread(run, ["doctor"], env, 60)
    assert result.returncode == 1
    assert "Telegram rejected BOT_TOKEN" in result.stdout


async def test_doctor_says_an_empty_database_needs_migrating(
    base_env: dict[str, str], telegram_env: dict[str, str], dydx_env: dict[str, str]
) -> None:
    name = f"tv2dydx_empty_{secrets.token_hex(3)}"
    url = await asyncio.to_thread(make_database, name)
    try:
        env = bare_env({**base_env, **telegram_env, **dydx_env, "DATABASE_URL": url})
        result = await asyncio.to_thread(run, ["doctor"], env, 60)
    finally:
        await asyncio.to_thread(drop_database, name)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("✗ migrations"))
    assert "database has no tables yet, code expects revision" in line, line
    assert "run: tv2dydx migrate" in line
    assert "is at an empty database" not in result.stdout


async def test_doctor_refuses_the_example_public_base_url(
    base_env: dict[str, str], telegram_env: dict[str, str], dydx_env: dict[str, str]
) -> None:
    env = bare_env(
        {**base_env, **telegram_env, **dydx_env, "PUBLIC_BASE_URL": "https://tv2dydx.example.com"}
    )
    result = await asyncio.to_thread(run, ["doctor"], env, 60)
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL is still the example's placeholder" in result.stdout + result.stderr
