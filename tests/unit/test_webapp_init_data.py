"""Mini App ``initData`` validation against what the Telegram double's client signs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.security.webapp import (
    InitDataError,
    InitDataProblem,
    init_data_hash,
    verify_init_data,
)
from doubles.telegram import BotIdentity
from doubles.telegram.state import UserProfile
from doubles.telegram.webapp import (
    init_data_for,
    launch_url,
    sign_init_data,
    telegram_signing_key,
)

BOT = BotIdentity(
    token="123456789:FAKE-test-token-for-mini-apps-00000",
    id=123456789,
    username="b",
    first_name="B",
)
OTHER_BOT = BotIdentity(
    token="987654321:FAKE-another-bots-token-00000000000",
    id=987654321,
    username="o",
    first_name="O",
)
ALICE = UserProfile(id=4242, first_name="Alice Ü", last_name="L", username="alice")
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def fresh(user: UserProfile = ALICE, bot: BotIdentity = BOT, age: float = 5) -> str:
    return init_data_for(user, bot, auth_date=int((NOW - timedelta(seconds=age)).timestamp()))


def test_the_doubles_init_data_proves_its_user() -> None:
    opener = verify_init_data(fresh(), BOT.token, now=NOW)
    assert opener.telegram_id == ALICE.id
    assert opener.auth_date == NOW - timedelta(seconds=5)


def test_the_launch_url_carries_it_in_the_fragment_as_telegram_does() -> None:
    init_data = fresh()
    url = launch_url("https://example.com/key/abc", init_data)
    parts = urlsplit(url)
    assert parts.path == "/key/abc"
    assert parts.query == ""  # nothing of it ever reaches the server in the URL
    params = dict(parse_qsl(parts.fragment))
    assert params["tgWebAppData"] == init_data
    assert params["tgWebAppVersion"]
    fields = dict(parse_qsl(init_data))
    assert set(fields) == {"query_id", "user", "auth_date", "signature", "hash"}
    assert json.loads(fields["user"])["first_name"] == "Alice Ü"
    # The hash covers every other field, signature included (aiogram computes it the same way).
    received = fields.pop("hash")
    assert init_data_hash(fields, BOT.token) == received
    # The Ed25519 signature covers "<bot id>:WebAppData" and the fields but hash and signature.
    signature = fields.pop("signature")
    message = f"{BOT.id}:WebAppData\n" + "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    public: Ed25519PublicKey = telegram_signing_key().public_key()
    public.verify(
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), message.encode()
    )


def _tamper(init_data: str, **changes: str) -> str:
    fields = dict(parse_qsl(init_data))
    fields.update(changes)
    return urlencode(fields, quote_via=quote)


@pytest.mark.parametrize(
    ("init_data", "problem"),
    [
        ("", InitDataProblem.MISSING),
        ("user=%7B%7D&auth_date=1", InitDataProblem.MALFORMED),  # no hash
        ("%%%", InitDataProblem.MALFORMED),
        ("x" * 5000, InitDataProblem.MALFORMED),
        (fresh() + "&user=%7B%22id%22%3A1%7D", InitDataProblem.MALFORMED),  # repeated field
        (fresh(bot=OTHER_BOT), InitDataProblem.BAD_SIGNATURE),  # another bot's
        (_tamper(fresh(), user=json.dumps({"id": 666})), InitDataProblem.BAD_SIGNATURE),
        (_tamper(fresh(), hash="0" * 64), InitDataProblem.BAD_SIGNATURE),
        (fresh(age=11 * 60), InitDataProblem.STALE),
        (fresh(age=-5 * 60), InitDataProblem.STALE),  # from the future
    ],
)
def test_forged_stale_and_malformed_init_data_are_refused(
    init_data: str, problem: InitDataProblem
) -> None:
    with pytest.raises(InitDataError) as refused:
        verify_init_data(init_data, BOT.token, now=NOW)
    assert refused.value.problem is problem
    assert str(refused.value) == problem.value  # never the data itself


@pytest.mark.parametrize(
    "user", ['{"id": "4242"}', '{"id": true}', "[4242]", "not json", '{"x":1}']
)
def test_signed_but_meaningless_user_fields_are_refused(user: str) -> None:
    fields = {"user": user, "auth_date": str(int(NOW.timestamp()))}
    with pytest.raises(InitDataError) as refused:
        verify_init_data(sign_init_data(fields, BOT), BOT.token, now=NOW)
    assert refused.value.problem is InitDataProblem.MALFORMED
