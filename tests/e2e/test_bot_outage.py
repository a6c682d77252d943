"""``tv2dydx bot`` polling through a Telegram outage: one WARNING, not an ERROR per retry."""
# Spawning the product as a real process from an async test is the point of this module.
# ruff: noqa: ASYNC220

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from doubles.telegram import TelegramDouble
from tests.e2e.test_cli import TV2DYDX, bare_env
from tests.e2e.test_processes import _stop, _wait


def _lines(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _count(log: Path, prefix: str) -> int:
    return sum(str(line["event"]).startswith(prefix) for line in _lines(log))


async def test_a_polling_outage_is_one_warning_and_its_retries_are_debug(
    tmp_path: Path,
    base_env: dict[str, str],
    telegram_double: TelegramDouble,
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
    live_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    log = tmp_path / "bot.log"
    env = bare_env({**base_env, **telegram_env, **dydx_env, "LOG_LEVEL": "DEBUG"})
    with log.open("w") as out:
        proc = subprocess.Popen([TV2DYDX, "bot"], env=env, stdout=out, stderr=out, text=True)
    try:
        await _wait(lambda: _count(log, "Start polling") == 1)
        telegram_double.set_down(True)
        await _wait(lambda: _count(log, "Sleep for ") >= 3)  # three retries failed
        telegram_double.set_down(False)
        await _wait(lambda: _count(log, "Connection established") == 1)
    finally:
        await _stop(proc)
    lines = _lines(log)
    failed = [line for line in lines if str(line["event"]).startswith("Failed to fetch updates")]
    assert len(failed) >= 3
    assert [line["level"] for line in failed] == ["warning"] + ["debug"] * (len(failed) - 1)
    assert [line for line in lines if line["level"] in {"error", "critical"}] == []
    assert "Traceback" not in log.read_text()
    first = next(line for line in lines if line["level"] != "debug")
    assert str(first["event"]).startswith("bot: answering Telegram updates (polling"), first
