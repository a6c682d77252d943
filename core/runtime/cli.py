"""The ``tv2dydx`` command.

``web``, ``bot`` and ``worker`` replace this process with ``python -m <component>``: each
component has its own composition root, and ``core`` never imports the edges. ``run``
supervises the three as children and stops them all when one dies.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from core import __version__

# Commands import what they use: `tv2dydx --help` and the exec of a component stay fast.

COMPONENTS = {"web": "webhook_server", "bot": "bot", "worker": "workers"}
STOP_GRACE_SECONDS = 15.0


def _exec_component(name: str, extra: Sequence[str] = ()) -> None:
    module = COMPONENTS[name]
    argv = [sys.executable, "-m", module, *extra]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter and module


def cmd_migrate(_args: argparse.Namespace) -> int:
    """Apply migrations up to head (a no-op when already there)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from core.runtime.logs import configure_logging
    from core.runtime.migrate import head_revisions, upgrade
    from core.runtime.startup import fail, settings_or_exit

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    try:
        upgrade(settings.database_url.get_secret_value())
    except (OSError, OperationalError, DBAPIError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        fail(
            f"cannot migrate: PostgreSQL is unreachable or refused ({reason}); check DATABASE_URL",
            code=1,
        )
    print(f"tv2dydx: schema at head {', '.join(sorted(head_revisions()))}")
    return 0


def cmd_component(args: argparse.Namespace) -> int:
    """Replace this process with one component."""
    extra = ["--check"] if getattr(args, "check", False) else []
    _exec_component(args.command, extra)
    return 0  # not reached


def _terminate(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def cmd_run(args: argparse.Namespace) -> int:
    """Run web, bot and worker together; if one dies, stop the others and fail."""
    from core.runtime.startup import settings_or_exit

    if not args.no_migrate:
        cmd_migrate(args)
    else:
        settings_or_exit()  # fail fast on configuration before forking anything
    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    children = {
        name: subprocess.Popen([sys.executable, "-m", module])  # noqa: S603
        for name, module in COMPONENTS.items()
    }
    exited: tuple[str, int] | None = None
    while not stopping and exited is None:
        for name, child in children.items():
            code = child.poll()
            if code is not None:
                exited = (name, code)
                break
        time.sleep(0.2)
    _terminate(children)
    if exited is not None:
        name, code = exited
        print(f"tv2dydx: {name} exited with code {code}; stopped the others", file=sys.stderr)
        return code or 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Replace this process with the demo (``python -m demo``: core never imports it)."""
    extra = ["--host", args.host, "--port", str(args.port), "--web-port", str(args.web_port)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "demo", *extra])  # noqa: S606 - ours
    return 0  # not reached


def cmd_keys_generate(_args: argparse.Namespace) -> int:
    """Print a new keyring entry."""
    from core.security.crypto import generate_key_entry

    entry = generate_key_entry()
    print(entry)
    print(
        "Put it FIRST in ENCRYPTION_KEYS to make it the primary, keep the old entries after it, "
        "restart, then run: tv2dydx keys rotate",
        file=sys.stderr,
    )
    return 0


def cmd_keys_public(_args: argparse.Namespace) -> int:
    """Print the worker's public sealing key (``KEY_SEALING_PUBLIC_KEY`` for the bot and the
    web)."""
    from core.runtime.startup import settings_or_exit

    settings = settings_or_exit()
    for problem in settings.problems_for("worker"):
        print(f"tv2dydx: {problem}", file=sys.stderr)
        return 2
    print(settings.keyring.sealing_key().encode())
    print(
        "Give it to the bot and the web as KEY_SEALING_PUBLIC_KEY (it seals trading keys, "
        "never opens them); keep ENCRYPTION_KEYS for the worker alone.",
        file=sys.stderr,
    )
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Re-encrypt every stored secret under the primary key."""
    from core.db.engine import create_engine, create_sessionmaker
    from core.runtime.logs import configure_logging
    from core.runtime.startup import fail, settings_or_exit
    from core.security.crypto import DecryptionError
    from core.services.keys import KeyRotationService

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)

    async def rotate() -> int:
        engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
        try:
            service = KeyRotationService(create_sessionmaker(engine), settings.keyring)
            report = await service.rotate(batch_size=args.batch_size)
        finally:
            await engine.dispose()
        print(
            f"tv2dydx: re-encrypted {report.resealed} credential(s) under key "
            f"{settings.keyring.primary_id}"
        )
        if report.remaining_by_key:
            print(f"tv2dydx: still under older keys: {report.remaining_by_key}", file=sys.stderr)
            return 1
        print("tv2dydx: no ciphertext uses an older key; older keys may now be removed")
        return 0

    try:
        return asyncio.run(rotate())
    except DecryptionError as exc:
        fail(f"cannot rotate: {exc}; put every old key back into ENCRYPTION_KEYS", code=1)


def cmd_doctor(_args: argparse.Namespace) -> int:
    """Check configuration and every dependency."""
    from core.runtime.doctor import doctor

    return doctor()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tv2dydx``."""
    parser = argparse.ArgumentParser(
        prog="tv2dydx",
        description="Non-custodial TradingView → dYdX v4 trading assistant (Telegram bot).",
    )
    parser.add_argument("--version", action="version", version=f"tv2dydx {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("migrate", help="apply database migrations (idempotent)").set_defaults(
        func=cmd_migrate
    )
    sub.add_parser(
        "web", help="run the web server (TradingView alerts, wallet-link page, health)"
    ).set_defaults(func=cmd_component)
    sub.add_parser("bot", help="run the Telegram bot").set_defaults(func=cmd_component)
    worker = sub.add_parser("worker", help="run the arq worker (orders, monitors, notifications)")
    worker.add_argument(
        "--check", action="store_true", help="exit 0 if a worker reported healthy recently"
    )
    worker.set_defaults(func=cmd_component)
    run = sub.add_parser(
        "run", help="migrate, then run web + bot + worker on one host (stops all if one dies)"
    )
    run.add_argument("--no-migrate", action="store_true", help="skip applying migrations first")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser(
        "demo",
        help="try it with no account and no network: the whole product against a simulated "
        "Telegram and dYdX, in a local chat page",
        description=(
            "SIMULATED — no real Telegram, no real exchange. Starts a simulated Telegram, a "
            "simulated dYdX chain with a funded account, and the real web server, bot and "
            "worker pointed at them (on a fresh demo database, emptied at each start: "
            "DATABASE_URL naming a tv2dydx_demo… database, default "
            "postgresql://postgres@127.0.0.1:5432/tv2dydx_demo; REDIS_URL default "
            "redis://127.0.0.1:6379/11), then serves a page to chat with the bot, fire "
            "TradingView alerts and move the market. Refuses to start if the environment points "
            "at a real Telegram or dYdX. Ctrl-C stops everything."
        ),
    )
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the page and the product's web server listen on (0.0.0.0 in a container)",
    )
    demo.add_argument("--port", type=int, default=8090, help="port of the demo page")
    demo.add_argument("--web-port", type=int, default=8091, help="port of the product's web server")
    demo.set_defaults(func=cmd_demo)

    keys = sub.add_parser("keys", help="manage the encryption keyring (ENCRYPTION_KEYS)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys_sub.add_parser("generate", help="print a new key entry").set_defaults(
        func=cmd_keys_generate
    )
    keys_sub.add_parser(
        "public",
        help="print the public sealing key the bot and the web need (KEY_SEALING_PUBLIC_KEY)",
    ).set_defaults(func=cmd_keys_public)
    rotate = keys_sub.add_parser(
        "rotate",
        help="re-encrypt stored keys as sealed boxes under the primary (resumable, online)",
    )
    rotate.add_argument("--batch-size", type=int, default=100, help="rows per transaction")
    rotate.set_defaults(func=cmd_keys_rotate)

    sub.add_parser(
        "doctor",
        help="check configuration, PostgreSQL, Redis, migrations, Telegram, dYdX and "
        "PUBLIC_BASE_URL over HTTPS",
    ).set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
