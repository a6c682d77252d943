"""The service as real processes: ``tv2dydx run`` and the worker, against the doubles."""
# Spawning the product as real processes from async tests is the point of this module.
# ruff: noqa: ASYNC109, ASYNC220

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Credential, Notification, User
from core.domain.preferences import Preferences
from core.exchange.factory import create_exchange_provider
from core.exchange.port import Exchange
from core.runtime.config import load_settings
from core.security.crypto import Keyring
from doubles.dydx.accounts import FundedTrader
from doubles.telegram import TelegramDouble
from tests.e2e.test_bot_trading import _open_position, _until
from tests.e2e.test_cli import TV2DYDX, bare_env, free_port, run


async def _wait(predicate: object, timeout: float = 90.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await asyncio.to_thread(predicate):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def _stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return await asyncio.to_thread(proc.wait, 30)


async def test_run_serves_web_bot_and_worker_then_stops_cleanly(
    base_env: dict[str, str],
    telegram_double: TelegramDouble,
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
    live_sessionmaker: async_sessionmaker[AsyncSession],  # the bot commits: clean up after
) -> None:
    port = free_port()
    env = bare_env(
        {**base_env, **telegram_env, **dydx_env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port)}
    )
    proc = subprocess.Popen(
        [TV2DYDX, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        await _wait(lambda: _healthy(port))
        user = telegram_double.user(first_name="Grace")
        await user.send("/start")
        reply = await user.next_message(timeout=90)
        assert "welcome to tv2dydx" in (reply.text or "")
        check = await asyncio.to_thread(run, ["worker", "--check"], env)
        assert check.returncode == 0, check.stderr
        assert proc.poll() is None
    finally:
        code = await _stop(proc)
    assert code == 0
    assert not _healthy(port)


async def test_run_stops_the_others_and_fails_when_one_dies(
    base_env: dict[str, str], telegram_double: TelegramDouble, dydx_env: dict[str, str]
) -> None:
    port = free_port()
    env = bare_env(
        {
            **base_env,
            **dydx_env,
            "TELEGRAM_API_BASE": telegram_double.base_url,
            # A token the Bot API does not know: the bot process exits at start.
            "BOT_TOKEN": "987654321:unknown-token-unknown-token-unknown-00",
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(port),
        }
    )
    proc = subprocess.Popen(
        [TV2DYDX, "run", "--no-migrate"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        code = await asyncio.to_thread(proc.wait, 60)
    finally:
        await _stop(proc)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code != 0
    assert "Telegram rejected BOT_TOKEN" in stderr
    assert "bot exited with code 1; stopped the others" in stderr
    assert not _healthy(port)
    check = await asyncio.to_thread(run, ["worker", "--check"], env)
    assert check.returncode == 1


async def test_worker_process_drains_the_outbox_into_telegram(
    base_env: dict[str, str],
    telegram_double: TelegramDouble,
    telegram_env: dict[str, str],
    live_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = telegram_double.user(first_name="Heidi", started=True)
    async with live_sessionmaker() as session:
        row = User(telegram_id=user.id)
        session.add(row)
        await session.flush()
        session.add(
            Notification(
                user_id=row.id, chat_id=user.chat_id, kind="test", text="Your order filled"
            )
        )
        await session.commit()
    env = bare_env({**base_env, **telegram_env})
    proc = subprocess.Popen(
        [TV2DYDX, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        message = await user.next_message(timeout=90)
        assert message.text == "Your order filled"
    finally:
        assert await _stop(proc) == 0
    events = [
        json.loads(line)
        for line in (proc.stdout.read() if proc.stdout else "").splitlines()
        if line.startswith("{")
    ]
    delivered = [e for e in events if e.get("event") == "notifications_delivered"]
    assert delivered
    assert delivered[0]["sent"] == 1
    assert delivered[0]["job_id"]  # every job's lines carry its id


async def test_web_and_worker_report_their_event_loop_stalls_when_asked(
    base_env: dict[str, str], telegram_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    reports = {"web": tmp_path / "web.jsonl", "worker": tmp_path / "worker.jsonl"}
    extra = {"web": {"WEB_HOST": "127.0.0.1", "WEB_PORT": str(port)}, "worker": {}}
    procs = {
        name: subprocess.Popen(
            [TV2DYDX, name],
            env=bare_env(
                {**base_env, **telegram_env, **extra[name], "LOOP_STALL_REPORT": str(report)}
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for name, report in reports.items()
    }

    def reported(name: str) -> bool:
        lines = reports[name].read_text().splitlines() if reports[name].exists() else []
        return any(json.loads(line)["pid"] == procs[name].pid for line in lines)

    try:
        await _wait(lambda: reported("web") and reported("worker"))
    finally:
        for proc in procs.values():
            assert await _stop(proc) == 0
    for report in reports.values():
        windows = [json.loads(line) for line in report.read_text().splitlines()]
        assert all(w["max_stall_ms"] >= 0 and w["to_ns"] > w["from_ns"] for w in windows), (
            "each line is one window of the loop's worst lateness"
        )


async def test_only_the_worker_process_holds_the_keyring_and_close_still_works(
    base_env: dict[str, str],
    telegram_double: TelegramDouble,
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
    funded_trader: FundedTrader,
    live_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Issue #13: ``tv2dydx web`` and ``tv2dydx bot`` run without ``ENCRYPTION_KEYS`` (both
    with the public sealing key only); a key added in the chat is sealed for the worker, and
    /close is signed by the worker process and reported through the outbox."""
    keys = base_env["ENCRYPTION_KEYS"]
    public = Keyring.parse(keys).sealing_key().encode()
    common = {k: v for k, v in {**base_env, **telegram_env, **dydx_env}.items()}
    without = {k: v for k, v in common.items() if k != "ENCRYPTION_KEYS"}
    port = free_port()
    envs = {
        "web": bare_env(
            without, KEY_SEALING_PUBLIC_KEY=public, WEB_HOST="127.0.0.1", WEB_PORT=str(port)
        ),
        "bot": bare_env(without, KEY_SEALING_PUBLIC_KEY=public),
        "worker": bare_env(common),
    }
    procs = {
        name: subprocess.Popen(
            [TV2DYDX, name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, env in envs.items()
    }
    try:
        await _wait(lambda: _healthy(port))
        chat = telegram_double.user(first_name="Quinn")
        await chat.send("/start")  # the bot process may still be starting: wait for it
        declaration = await chat.wait_for(lambda m: bool(m.buttons), 90)
        await chat.press(declaration, text="I confirm")
        await chat.wait_for(lambda m: "noted" in (m.text or ""), 30)
        for text, answer in [
            ("/key", "Step 1 of 2"),
            (funded_trader.owner_address, "Step 2 of 2"),
            (funded_trader.api_private_key_hex, "Trading key connected"),
        ]:
            await chat.send(text)
            await chat.wait_for(lambda m, answer=answer: answer in (m.text or ""), 60)
        async with live_sessionmaker() as session:
            credential = await session.scalar(select(Credential))
        assert credential is not None
        assert credential.key_id.startswith("x:")  # sealed by the bot for the worker

        settings = load_settings(env_file=None, **{k.lower(): v for k, v in common.items()})
        provider = create_exchange_provider(live_sessionmaker, settings)
        try:
            exchange = await provider.for_user(credential.user_id, Preferences())
            await _open_position(exchange, "0.2", client_id=920_001)
            await _until(lambda: _has_position(exchange), "the position")
        finally:
            await provider.close()
        await chat.send("/close ETH-USD")
        closed = await chat.wait_for(lambda m: "Closed" in (m.text or ""), 90)
        assert (closed.text or "").startswith("✅ Closed: ETH-USD: sold 0.2"), closed.text
        assert all(proc.poll() is None for proc in procs.values())
    finally:
        codes = {name: await _stop(proc) for name, proc in procs.items()}
    errors = {name: proc.stderr.read() if proc.stderr else "" for name, proc in procs.items()}
    assert codes == {"web": 0, "bot": 0, "worker": 0}, errors
    assert not any("Traceback" in text for text in errors.values()), errors


async def _has_position(exchange: Exchange) -> bool:
    return bool(await exchange.positions())
