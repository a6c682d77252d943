"""No secret of the trading-key flow reaches any log line.

The whole flow runs with the production logging set-up at DEBUG: the bot conversation
(secrets pasted at both steps and outside it, refusals, acceptance, status, removal), the
service's refusals and decryption, and the compliance job. Every line written to stdout is
captured and searched for the private key (bare, ``0x``-prefixed and upper-case) and the
seed phrase.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any, cast

import pytest
import structlog
from aiogram import Dispatcher
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import User
from core.runtime.config import Settings
from core.runtime.logs import REDACTED, configure_logging
from core.services.credentials import CredentialRefusedError
from doubles.dydx.accounts import FundedTrader
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.conftest import polling_bot
from workers.context import WorkerContext
from workers.jobs.screen_compliance import screen_compliance

MNEMONIC = "abandon ability able about above absent absorb abstract absurd abuse access accident"
OUR_LOGGERS = ("core", "bot", "workers")


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Production logging (JSON on stdout) at DEBUG, configured before anything binds a
    logger, with stdout captured; the previous configuration is put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):  # the handler keeps this stream
        configure_logging("DEBUG", "json")
    yield stdout
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


@pytest.fixture
async def bot_and_services(
    json_logs: io.StringIO,
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    dispatcher: Dispatcher,
) -> AsyncIterator[dict[str, Any]]:
    from core.exchange.factory import create_key_verifier
    from core.services.credentials import CredentialService

    settings = make_settings(**telegram_env, **dydx_env)
    # The worker's side: the bot holds no keyring, so decrypting and screening happen here.
    worker_credentials = CredentialService(
        sessionmaker, settings.keyring, create_key_verifier(settings.dydx)
    )
    async with polling_bot(settings, sessionmaker, dispatcher) as (_bot, services):
        yield {**services, "worker_credentials": worker_credentials}
    await worker_credentials.close()


async def test_no_secret_of_the_key_flow_reaches_a_log_line(
    json_logs: io.StringIO,
    bot_and_services: dict[str, Any],
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    key = funded_trader.api_private_key_hex
    secrets = [key, f"0x{key}", key.upper(), MNEMONIC, funded_trader.owner_private_key_hex]

    # The conversation, with every kind of secret at every step.
    user = telegram_double.user(first_name="Logan")
    await user.send("/start")
    await user.next_message()
    declaration = await user.next_message()
    await user.press(declaration, text="I confirm")
    await user.next_message()
    # Each step waits for the bot's last answer: the test's database connection is shared.
    steps = [
        (f"/key {key}", "Step 1 of 2"),
        (MNEMONIC, "seed phrase"),
        (key, "First I need the address"),
        (funded_trader.owner_address, "Step 2 of 2"),
        (MNEMONIC, "Never send your seed phrase"),
        ("0x" + key[:-1], "That is not a private key"),
        (funded_trader.owner_private_key_hex, "main key"),  # ends the conversation
        ("/key", "Step 1 of 2"),
        (funded_trader.owner_address, "Step 2 of 2"),
        (f"0x{key}", "Trading key connected"),
        (MNEMONIC, "I deleted it"),  # outside any conversation
        ("/key", "Your dYdX trading key"),
    ]
    for text, answer in steps:
        await user.send(text)
        await user.wait_for(lambda m, answer=answer: answer in (m.text or ""))

    # The services directly: a refusal (the bot's), a decryption and the daily screen (the
    # worker's, which holds the keyring).
    credentials = bot_and_services["credentials"]
    worker_credentials = bot_and_services["worker_credentials"]
    async with sessionmaker() as session:
        row = await session.scalar(select(User).where(User.telegram_id == user.id))
        assert row is not None
        user_id = row.id
        await session.execute(
            update(User)
            .where(User.id == user_id)
            .values(compliance_checked_at=utcnow() - timedelta(days=2))
        )
        await session.commit()
    with pytest.raises(CredentialRefusedError):
        await credentials.add_key(user_id, funded_trader.owner_address, MNEMONIC)
    assert await worker_credentials.load_signing_key(user_id) == bytes.fromhex(key)
    dydx_double.set_compliance(funded_trader.owner_address, "CLOSE_ONLY")
    context = cast(WorkerContext, {"credentials": worker_credentials})
    assert await screen_compliance(context) == 1

    out = json_logs.getvalue()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    events = {line.get("event") for line in lines}
    # The capture saw the flow (so an empty capture cannot pass for a clean one).
    assert {"credential_refused", "credential_added", "compliance_changed"} <= events
    assert any(str(event).startswith("Update id=") for event in events)
    for secret in secrets:
        assert secret not in out
        assert secret.lower() not in out.lower()
    assert "abandon ability able" not in out
    # Our own code never even handed a secret to the logger for the redactor to mask.
    ours = [line for line in lines if str(line.get("logger", "")).split(".")[0] in OUR_LOGGERS]
    assert ours
    assert not [line for line in ours if REDACTED in json.dumps(line)]


async def test_a_sentry_event_from_inside_the_key_flow_carries_no_key(
    make_settings: Callable[..., Settings],
    dydx_env: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    funded_trader: FundedTrader,
) -> None:
    import sentry_sdk
    from sentry_sdk.utils import event_from_exception

    from core.exchange.factory import create_key_verifier
    from core.runtime.logs import init_sentry
    from core.services.credentials import CredentialService

    settings = make_settings(**dydx_env)
    service = CredentialService(
        sessionmaker,
        settings.keyring,
        create_key_verifier(settings.dydx),
    )
    key = funded_trader.api_private_key_hex
    try:
        assert init_sentry("http://public@127.0.0.1:9/1", environment="test", release="t")
        client = sentry_sdk.get_client()
        # Request bodies (the Mini App key form posts the key in one) never go to Sentry.
        assert client.options["max_request_body_size"] == "never"
        # An unexpected failure deep in add_key, after the key was parsed: no such user.
        with pytest.raises(LookupError) as raised:
            await service.add_key(10**12, funded_trader.owner_address, f"0x{key}")
        # Sentry's own event builder, local variables included (its default).
        event, hint = event_from_exception(
            (raised.type, raised.value, raised.tb), client_options=client.options
        )
        frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
        assert any(frame.get("vars") for frame in frames)
        scrubbed = json.dumps(client.options["before_send"](event, hint))
    finally:
        sentry_sdk.init()
        await service.close()
    # The raw bytes as Sentry's repr shows them, as they appear inside the JSON text.
    as_bytes = json.dumps(repr(bytes.fromhex(key))[2:-1])[1:25]
    for secret in (key, f"0x{key}", as_bytes):
        assert secret not in scrubbed
