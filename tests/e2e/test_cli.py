"""The ``tv2dydx`` command, run as a real process."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Credential, User
from core.runtime.config import REQUIRED
from core.security.crypto import CREDENTIAL_PURPOSE, Keyring, associated_data, generate_key_entry
from tests.conftest import drop_database, make_database

TV2DYDX = str(Path(sys.executable).with_name("tv2dydx"))


def run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TV2DYDX, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def bare_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """A minimal environment; coverage's own variables pass so subprocesses are measured."""
    coverage = {k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")}
    return {"PATH": os.environ["PATH"], **coverage, **(base or {}), **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [TV2DYDX, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(predicate: object, timeout: float = 90.0) -> None:
    # Generous: a component imports aiogram/web3 (seconds) and, in CI, runs under coverage.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def wait_serving(proc: subprocess.Popen[str], port: int) -> None:
    """Until ``tv2dydx web`` answers ``/healthz`` on ``port`` (failing if it exits)."""

    def up() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["migrate"],
        ["web"],
        ["bot"],
        ["worker"],
        ["run"],
        ["keys"],
        ["keys", "rotate"],
        ["doctor"],
    ],
)
def test_help_everywhere(args: list[str]) -> None:
    result = run([*args, "--help"], bare_env())
    assert result.returncode == 0
    assert "usage: tv2dydx" in result.stdout


def test_doctor_names_each_missing_setting() -> None:
    result = run(["doctor"], bare_env(), timeout=30)
    assert result.returncode != 0
    for name in REQUIRED:
        assert f"{name} is not set" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["web", "bot", "worker", "migrate"])
def test_bad_database_url_is_one_line(base_env: dict[str, str], command: str) -> None:
    env = bare_env(base_env, DATABASE_URL="mysql://root:hunter2@db/x")
    result = run([command], env, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "DATABASE_URL is invalid" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["web", "worker", "migrate"])
def test_unreachable_database_is_one_line(base_env: dict[str, str], command: str) -> None:
    env = bare_env(base_env, DATABASE_URL="postgresql://u:pw@127.0.0.1:1/x")
    result = run([command], env, timeout=30)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("tv2dydx:")]
    assert len(lines) == 1, result.stderr
    assert "PostgreSQL" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("processes", ["1", "2"])
def test_web_port_in_use_is_one_line_naming_the_variable(
    base_env: dict[str, str], processes: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = bare_env(base_env, WEB_HOST="127.0.0.1", WEB_PORT=str(port), WEB_PROCESSES=processes)
        result = run(["web"], env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"WEB_PORT {port} on WEB_HOST 127.0.0.1: Address already in use" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_run_with_web_port_in_use_names_the_variable_first(base_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = bare_env(base_env, WEB_HOST="127.0.0.1", WEB_PORT=str(port), WORKER_PROCESSES="1")
        result = run(["run", "--no-migrate"], env, timeout=120)
    assert result.returncode == 1
    first, *rest = result.stderr.strip().splitlines()
    assert first.startswith(f"tv2dydx: WEB_PORT {port} on WEB_HOST 127.0.0.1: Address already")
    assert rest == ["tv2dydx: web exited with code 1; stopped the others"]
    assert "Traceback" not in result.stdout + result.stderr


def test_web_says_where_it_listens(base_env: dict[str, str]) -> None:
    port = free_port()
    env = bare_env(base_env, WEB_HOST="127.0.0.1", WEB_PORT=str(port))
    with process(["web"], env) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"web: listening on 127.0.0.1:{port}" in first, first


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    """A database that was never migrated."""
    name = f"tv2dydx_empty_{secrets.token_hex(3)}"
    yield make_database(name)
    drop_database(name)


@pytest.mark.parametrize("command", ["web", "bot", "worker"])
def test_a_never_migrated_database_is_one_line(
    base_env: dict[str, str], empty_database_url: str, command: str
) -> None:
    result = run([command], bare_env(base_env, DATABASE_URL=empty_database_url), timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "database has no tables yet" in result.stderr
    assert "run: tv2dydx migrate" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_web_serves_health_and_stops_on_sigterm(base_env: dict[str, str]) -> None:
    port = free_port()
    env = bare_env(base_env, WEB_HOST="127.0.0.1", WEB_PORT=str(port))
    with process(["web"], env) as proc:
        wait_serving(proc, port)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_worker_runs_and_reports_health(base_env: dict[str, str]) -> None:
    env = bare_env(base_env)
    assert run(["worker", "--check"], env).returncode == 1
    with process(["worker"], env) as proc:
        wait_for(lambda: proc.poll() is None and run(["worker", "--check"], env).returncode == 0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert run(["worker", "--check"], env).returncode == 1


def test_worker_says_what_it_serves_and_its_routine_runs_stay_at_debug(
    base_env: dict[str, str],
) -> None:
    env = bare_env(base_env)
    with process(["worker"], env) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        wait_for(lambda: proc.poll() is None and run(["worker", "--check"], env).returncode == 0)
        time.sleep(3)  # the crons run every second or two meanwhile
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "worker: running alerts, notifications and crons from Redis 127.0.0.1:" in first
    lines = [json.loads(line) for line in [first, *out.splitlines()] if line.startswith("{")]
    done = next(line["event"] for line in lines if "jobs complete" in line["event"])
    assert int(re.search(r"(\d+) jobs complete", done).group(1)) >= 2  # type: ignore[union-attr]
    info = [line["event"] for line in lines if line["level"] == "info"]
    # Start-up (incl. the keys' re-check) and shutdown only: no line per job run, per
    # reconnect or per tick, so none repeats.
    assert len(info) <= 8, info
    assert len(info) == len(set(info)), info
    warnings = [(line["event"], line.get("shard")) for line in lines if line["level"] == "warning"]
    assert len(warnings) == len(set(warnings)), warnings  # a failing retry is not repeated


def test_bot_without_telegram_says_once_what_to_check(base_env: dict[str, str]) -> None:
    api = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = bare_env(base_env, TELEGRAM_API_BASE=api, LOG_LEVEL="DEBUG")
    with process(["bot"], env) as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        # Until the third attempt has failed (two back-offs): the warning must not repeat.
        while sum("telegram_unreachable_at_start" in line for line in lines) < 2:
            line = proc.stdout.readline()
            assert line, "".join(lines) + (proc.stderr.read() if proc.stderr else "")
            lines.append(line)
    first = next(line for line in lines if '"level": "info"' in line)
    assert f"bot: answering Telegram updates (polling, Bot API {api})" in first
    warnings = [line for line in lines if '"level": "warning"' in line]
    assert len(warnings) == 1, warnings
    assert f"bot: cannot reach Telegram at {api}" in warnings[0]
    assert "TELEGRAM_API_BASE" in warnings[0]
    assert not any('"level": "error"' in line or "Traceback" in line for line in lines)


def test_keys_generate_prints_a_valid_entry() -> None:
    result = run(["keys", "generate"], bare_env())
    assert result.returncode == 0
    ring = Keyring.parse(result.stdout.strip())
    assert len(ring.key_ids) == 1


async def test_keys_rotate_reseals_every_credential(
    base_env: dict[str, str], live_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    import asyncio

    old_entry, new_entry = base_env["ENCRYPTION_KEYS"], generate_key_entry()
    old = Keyring.parse(old_entry)
    async with live_sessionmaker() as session:
        for n in range(5):
            user = User(telegram_id=1000 + n)
            session.add(user)
            await session.flush()
            sealed = old.encrypt(f"key-{n}".encode(), associated_data(CREDENTIAL_PURPOSE, user.id))
            session.add(
                Credential(
                    user_id=user.id,
                    owner_address=f"dydx1owner{n}",
                    key_address=f"dydx1key{n}",
                    authenticator_id=n,
                    key_id=sealed.key_id,
                    ciphertext=sealed.blob,
                )
            )
        await session.commit()

    env = bare_env(base_env, ENCRYPTION_KEYS=f"{new_entry},{old_entry}")
    result = await asyncio.to_thread(run, ["keys", "rotate", "--batch-size", "2"], env)
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 5 credential(s)" in result.stdout

    new = Keyring.parse(new_entry)
    from sqlalchemy import select

    from core.security.crypto import DecryptionError, Sealed, open_credential

    async with live_sessionmaker() as session:
        rows = (await session.scalars(select(Credential).order_by(Credential.id))).all()
        # Sealed boxes to the new primary, bound to user, owner and authenticator (#13).
        assert {row.key_id for row in rows} == {f"x:{new.primary_id}"}
        for n, row in enumerate(rows):
            sealed = Sealed(row.key_id, row.ciphertext)
            binding = (row.user_id, row.owner_address, row.authenticator_id)
            assert open_credential(new, sealed, *binding) == f"key-{n}".encode()
            with pytest.raises(DecryptionError):  # the old user-only binding no longer opens
                new.decrypt(sealed, associated_data(CREDENTIAL_PURPOSE, row.user_id))

    again = await asyncio.to_thread(run, ["keys", "rotate"], env)
    assert "re-encrypted 0 credential(s)" in again.stdout
    missing_old = await asyncio.to_thread(
        run, ["keys", "rotate"], {**env, "ENCRYPTION_KEYS": generate_key_entry()}
    )
    assert missing_old.returncode == 1
    assert "put every old key back" in missing_old.stderr


def test_only_the_worker_needs_the_keyring(base_env: dict[str, str]) -> None:
    """The worker refuses to start without ENCRYPTION_KEYS; the bot needs only the public
    sealing key, which ``keys public`` prints (issue #13)."""
    without = {k: v for k, v in base_env.items() if k != "ENCRYPTION_KEYS"}
    worker = run(["worker"], bare_env(without), timeout=30)
    assert worker.returncode == 2
    assert "ENCRYPTION_KEYS is not set" in worker.stderr
    assert "Traceback" not in worker.stderr
    bot = run(["bot"], bare_env(without), timeout=30)
    assert bot.returncode == 2
    assert "KEY_SEALING_PUBLIC_KEY is not set" in bot.stderr

    public = run(["keys", "public"], bare_env(base_env), timeout=30)
    assert public.returncode == 0, public.stderr
    expected = Keyring.parse(base_env["ENCRYPTION_KEYS"]).sealing_key().encode()
    assert public.stdout.strip() == expected
    assert base_env["ENCRYPTION_KEYS"].split(":", 1)[1] not in public.stdout

    doctor = run(["doctor"], bare_env(without, KEY_SEALING_PUBLIC_KEY=expected), timeout=60)
    assert "- worker: needs ENCRYPTION_KEYS, not set here" in doctor.stdout
    assert "✓ bot: needs KEY_SEALING_PUBLIC_KEY" in doctor.stdout
    assert "✓ web: needs KEY_SEALING_PUBLIC_KEY" in doctor.stdout  # the key form seals too
