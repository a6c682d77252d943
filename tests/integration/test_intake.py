"""``POST /hook/{token}`` through the real web app, PostgreSQL and Redis.

The app opens its own database pool, so these tests commit for real (``live_sessionmaker``
empties the tables afterwards). Every refusal is checked for its status code and for what
it must not leave behind: no accepted alert, no job, no order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from arq.jobs import deserialize_job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.adapters.arq_queue import QUEUE_NAME
from core.db.base import utcnow
from core.db.models import Alert, Notification, Order, User
from core.db.uow import UnitOfWork
from core.domain.states import AlertState
from core.runtime.config import Settings
from core.services.webhooks import IssuedWebhook, WebhookService
from webhook_server.app import create_app

Maker = async_sessionmaker[AsyncSession]
BASE_URL = "https://tv2dydx.example.com"


def timenow(offset: float = 0) -> str:
    """``{{timenow}}`` as TradingView renders it."""
    return (utcnow() + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_of(issued: IssuedWebhook) -> str:
    return issued.url.rsplit("/", 1)[1]


def alert_body(issued: IssuedWebhook, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "passphrase": issued.passphrase,
        "market": "BINANCE:BTCUSDT.P",
        "action": "buy",
        "position": "long",
        "size": "0.01",
        "price": "65000.5",
        "time": timenow(),
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not None}


async def make_webhook(maker: Maker, telegram_id: int) -> tuple[int, IssuedWebhook]:
    async with UnitOfWork(maker) as uow:
        user = await uow.users.get_or_create(telegram_id)
        await uow.commit()
    return user.id, await WebhookService(maker, BASE_URL).issue(user.id)


async def count(maker: Maker, model: type[Any], *where: Any) -> int:
    async with maker() as session:
        query = select(func.count()).select_from(model)
        if where:
            query = query.where(*where)
        return int(await session.scalar(query) or 0)


async def alerts(maker: Maker) -> list[Alert]:
    async with maker() as session:
        return list((await session.scalars(select(Alert).order_by(Alert.id))).all())


async def wait_enqueued_marks(maker: Maker, within: float = 5) -> None:
    """Intake writes ``enqueued_at`` in small batches just after answering."""
    unmarked = (Alert.state == AlertState.ACCEPTED, Alert.enqueued_at.is_(None))
    for _ in range(int(within / 0.01)):
        if not await count(maker, Alert, *unmarked):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("enqueued_at was not written")


async def queued_jobs(redis: Redis) -> list[str]:
    # Only alert jobs: other features nudge the same queue (the notifications outbox).
    queued = (job.decode() for job in await redis.zrange(QUEUE_NAME, 0, -1))
    return [job for job in queued if job.startswith("alert:")]


async def assert_nothing_accepted(maker: Maker, redis: Redis) -> None:
    assert await count(maker, Alert, Alert.state == AlertState.ACCEPTED) == 0
    assert await count(maker, Order) == 0
    assert await queued_jobs(redis) == []


async def start(app_settings: Settings) -> TestClient:
    client = TestClient(TestServer(create_app(app_settings)))
    await client.start_server()
    return client


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings], live_sessionmaker: Maker, redis: Redis
) -> AsyncIterator[TestClient]:
    client = await start(make_settings(public_base_url=BASE_URL, webhook_ip_allowlist="*"))
    yield client
    await client.close()


@pytest.fixture
async def open_client(
    make_settings: Callable[..., Settings], live_sessionmaker: Maker, redis: Redis
) -> AsyncIterator[TestClient]:
    client = await start(
        make_settings(
            public_base_url=BASE_URL,
            webhook_ip_allowlist="*",
            alert_rate_per_token=1_000_000,
            alert_rate_per_ip=10_000_000,
        )
    )
    yield client
    await client.close()


@pytest.fixture
async def hook(live_sessionmaker: Maker) -> tuple[int, IssuedWebhook]:
    return await make_webhook(live_sessionmaker, 5001)


# Accepted ---------------------------------------------------------------------------------


async def test_a_valid_alert_is_committed_enqueued_and_acknowledged(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker, redis: Redis
) -> None:
    user_id, issued = hook
    response = await client.post(f"/hook/{token_of(issued)}", json=alert_body(issued))
    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "accepted"
    # Committed before the answer; its enqueue mark follows within milliseconds.
    assert await count(live_sessionmaker, Alert) == 1
    await wait_enqueued_marks(live_sessionmaker)
    [alert] = await alerts(live_sessionmaker)
    assert body["id"] == alert.id
    assert alert.user_id == user_id
    assert alert.state is AlertState.ACCEPTED
    assert alert.market == "BTC-USD"
    assert alert.action == "buy"
    assert alert.enqueued_at is not None
    assert alert.fields["size"] == "0.01"
    assert alert.fields["position"] == "long"
    assert "passphrase" not in json.dumps(alert.fields)
    assert issued.passphrase not in json.dumps(alert.fields)
    assert await queued_jobs(redis) == [f"alert:{alert.id}"]
    raw_job = await redis.get(f"arq:job:alert:{alert.id}")
    assert raw_job is not None
    job = deserialize_job(raw_job)
    assert job.function == "execute_alert"
    assert job.args == (alert.id,)
    assert job.kwargs == {}
    # No secret is pickled into Redis.
    assert issued.passphrase.encode() not in raw_job
    assert token_of(issued).encode() not in raw_job


async def test_a_text_plain_body_is_parsed_as_json(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker
) -> None:
    _, issued = hook
    response = await client.post(
        f"/hook/{token_of(issued)}",
        data=json.dumps(alert_body(issued)).encode(),
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    assert response.status == 200, await response.text()
    assert await count(live_sessionmaker, Alert, Alert.state == AlertState.ACCEPTED) == 1


async def test_the_tradingview_alert_connector_payload_is_accepted_unchanged(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker
) -> None:
    _, issued = hook
    payload = {
        "exchange": "dydxv4",
        "strategy": "SOL_USD",
        "market": "SOL_USD",
        "size": "10",
        "reverse": False,
        "order": "sell",
        "position": "short",
        "price": "150.25",
        "passphrase": issued.passphrase,
    }
    response = await client.post(f"/hook/{token_of(issued)}", json=payload)
    assert response.status == 200, await response.text()
    [alert] = await alerts(live_sessionmaker)
    assert (alert.market, alert.action, alert.strategy) == ("SOL-USD", "sell", "SOL_USD")
    assert alert.fields["position"] == "short"
    assert alert.fields["reverse"] is False


# Idempotency ------------------------------------------------------------------------------


async def test_a_repeated_alert_is_a_duplicate_and_changes_nothing(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker, redis: Redis
) -> None:
    _, issued = hook
    body = alert_body(issued, alert_id="Long-1")
    first = await client.post(f"/hook/{token_of(issued)}", json=body)
    assert first.status == 200
    # Same alert_id, different spelling and time: still the same alert.
    again = await client.post(
        f"/hook/{token_of(issued)}", json={**body, "market": "BTC-USD", "time": timenow(-1)}
    )
    assert again.status == 200
    assert await again.json() == {"status": "duplicate"}
    assert await count(live_sessionmaker, Alert) == 1
    assert len(await queued_jobs(redis)) == 1


async def test_without_alert_id_the_canonical_body_is_the_key(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker
) -> None:
    _, issued = hook
    body = alert_body(issued)
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=4)
    assert (await client.post(f"/hook/{token_of(issued)}", json=body)).status == 200
    second = await client.post(f"/hook/{token_of(issued)}", data=reordered)
    assert await second.json() == {"status": "duplicate"}
    other = await client.post(f"/hook/{token_of(issued)}", json={**body, "size": "0.02"})
    assert (await other.json())["status"] == "accepted"
    assert await count(live_sessionmaker, Alert) == 2


async def test_twenty_concurrent_identical_alerts_give_one_row_and_one_job(
    open_client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker, redis: Redis
) -> None:
    _, issued = hook
    raw = json.dumps(alert_body(issued, alert_id="Long-20"))

    async def post() -> dict[str, Any]:
        response = await open_client.post(f"/hook/{token_of(issued)}", data=raw)
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result

    async with asyncio.timeout(20):
        results = await asyncio.gather(*(post() for _ in range(20)))
    statuses = sorted(result["status"] for result in results)
    assert statuses == ["accepted"] + ["duplicate"] * 19
    [alert] = await alerts(live_sessionmaker)
    assert await queued_jobs(redis) == [f"alert:{alert.id}"]


# Refusals ---------------------------------------------------------------------------------


async def test_a_sender_outside_the_allowlist_gets_403(
    make_settings: Callable[..., Settings], live_sessionmaker: Maker, redis: Redis
) -> None:
    _, issued = await make_webhook(live_sessionmaker, 5002)
    client = await start(make_settings(public_base_url=BASE_URL))  # TradingView's IPs only
    try:
        response = await client.post(f"/hook/{token_of(issued)}", json=alert_body(issued))
        assert response.status == 403
        # Claiming a TradingView address without a trusted proxy changes nothing.
        spoofed = await client.post(
            f"/hook/{token_of(issued)}",
            json=alert_body(issued),
            headers={"X-Forwarded-For": "52.89.214.238"},
        )
        assert spoofed.status == 403
    finally:
        await client.close()
    assert await count(live_sessionmaker, Alert) == 0
    await assert_nothing_accepted(live_sessionmaker, redis)


async def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(
    make_settings: Callable[..., Settings], live_sessionmaker: Maker, redis: Redis
) -> None:
    _, issued = await make_webhook(live_sessionmaker, 5003)
    client = await start(make_settings(public_base_url=BASE_URL, trusted_proxies="127.0.0.1"))
    try:
        url = f"/hook/{token_of(issued)}"
        spoofed = await client.post(
            url,
            json=alert_body(issued),
            headers={"X-Forwarded-For": "52.89.214.238, 203.0.113.9"},
        )
        assert spoofed.status == 403
        real = await client.post(
            url, json=alert_body(issued), headers={"X-Forwarded-For": "52.89.214.238"}
        )
        assert real.status == 200, await real.text()
    finally:
        await client.close()
    [alert] = await alerts(live_sessionmaker)
    assert alert.source_ip == "52.89.214.238"


async def test_a_body_over_4_kib_gets_413(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker, redis: Redis
) -> None:
    _, issued = hook
    body = alert_body(issued, strategy="x" * 4096)
    response = await client.post(f"/hook/{token_of(issued)}", json=body)
    assert response.status == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(5):
            yield b" " * 1024

    chunked = await client.post(f"/hook/{token_of(issued)}", data=chunks())
    assert chunked.status == 413
    assert await count(live_sessionmaker, Alert) == 0
    await assert_nothing_accepted(live_sessionmaker, redis)


async def test_an_unknown_token_answers_like_an_unknown_route(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker, redis: Redis
) -> None:
    user_id, issued = hook
    unknown_route = await client.post("/nothing-here", json=alert_body(issued))
    expected = (unknown_route.status, unknown_route.content_type, await unknown_route.text())
    assert expected[0] == 404
    for token in ("A" * 32, "short", token_of(issued)[:-1] + "x"):
        response = await client.post(f"/hook/{token}", json=alert_body(issued))
        assert (response.status, response.content_type, await response.text()) == expected
    # A revoked webhook is unknown too.
    assert await WebhookService(live_sessionmaker, BASE_URL).revoke(user_id)
    response = await client.post(f"/hook/{token_of(issued)}", json=alert_body(issued))
    assert (response.status, response.content_type, await response.text()) == expected
    assert await count(live_sessionmaker, Alert) == 0
    await assert_nothing_accepted(live_sessionmaker, redis)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"buy BTCUSDT 0.01", "body is not valid JSON"),
        (b'["buy"]', "body must be a JSON object"),
        (b"\xff\xfe", "body is not UTF-8 text"),
        (b'{"size": NaN}', "body is not valid JSON"),
        (b"", "body is empty"),
    ],
)
async def test_a_body_that_is_not_a_json_object_gets_400_and_is_recorded(
    client: TestClient,
    hook: tuple[int, IssuedWebhook],
    live_sessionmaker: Maker,
    redis: Redis,
    raw: bytes,
    reason: str,
) -> None:
    _, issued = hook
    response = await client.post(
        f"/hook/{token_of(issued)}", data=raw, headers={"Content-Type": "text/plain"}
    )
    assert response.status == 400
    assert (await response.json())["reason"] == reason
    [alert] = await alerts(live_sessionmaker)
    assert (alert.state, alert.reason, alert.dedupe_key) == (AlertState.REJECTED, reason, None)
    await assert_nothing_accepted(live_sessionmaker, redis)


async def test_a_wrong_or_foreign_passphrase_gets_401(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker, redis: Redis
) -> None:
    _, alice = hook
    _, bob = await make_webhook(live_sessionmaker, 5004)
    url = f"/hook/{token_of(alice)}"
    for passphrase in (bob.passphrase, alice.passphrase + "x", "", None, 12345):
        body = {**alert_body(alice), "passphrase": passphrase}
        response = await client.post(url, json=body)
        assert response.status == 401, passphrase
    missing = alert_body(alice)
    del missing["passphrase"]
    assert (await client.post(url, json=missing)).status == 401
    rows = await alerts(live_sessionmaker)
    assert len(rows) == 6
    assert {(row.state, row.reason) for row in rows} == {(AlertState.REJECTED, "wrong passphrase")}
    stored = json.dumps([row.fields for row in rows])
    assert alice.passphrase not in stored
    assert bob.passphrase not in stored
    # Bob's own URL still takes Bob's passphrase.
    assert (await client.post(f"/hook/{token_of(bob)}", json=alert_body(bob))).status == 200


async def test_a_schema_error_gets_422_listing_fields_and_one_notice(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker, redis: Redis
) -> None:
    _, issued = hook
    body = alert_body(issued, action="hold", size="-1", sl_pct="0.5", sl_price="60000")
    response = await client.post(f"/hook/{token_of(issued)}", json=body)
    assert response.status == 422
    answer = await response.json()
    assert answer["error"] == "invalid alert"
    assert set(answer["fields"]) == {"action", "size", "sl_price"}
    # A broken strategy firing again does not flood the chat.
    again = await client.post(f"/hook/{token_of(issued)}", json={**body, "market": "???"})
    assert again.status == 422
    assert "market" in (await again.json())["fields"]
    rows = await alerts(live_sessionmaker)
    assert [row.state for row in rows] == [AlertState.REJECTED] * 2
    assert rows[0].reason is not None
    assert rows[0].reason.startswith("invalid alert: action: must be one of buy, sell, close")
    assert await count(live_sessionmaker, Notification) == 1
    async with live_sessionmaker() as session:
        notice = await session.scalar(select(Notification))
    assert notice is not None
    assert notice.chat_id == 5001
    assert "refused" in notice.text
    assert issued.passphrase not in notice.text
    await assert_nothing_accepted(live_sessionmaker, redis)


async def test_a_stale_alert_gets_422_and_a_notice(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker, redis: Redis
) -> None:
    _, issued = hook
    response = await client.post(
        f"/hook/{token_of(issued)}", json=alert_body(issued, time=timenow(-61 - 5))
    )
    assert response.status == 422
    answer = await response.json()
    assert answer["error"] == "stale"
    assert answer["reason"].startswith("stale: sent ")
    future = await client.post(
        f"/hook/{token_of(issued)}", json=alert_body(issued, time=timenow(3600))
    )
    assert future.status == 422
    rows = await alerts(live_sessionmaker)
    assert [row.state for row in rows] == [AlertState.REJECTED] * 2
    assert rows[0].market == "BTC-USD"
    assert await count(live_sessionmaker, Notification) == 1
    await assert_nothing_accepted(live_sessionmaker, redis)


async def test_alerts_over_the_per_token_rate_get_429(
    make_settings: Callable[..., Settings], live_sessionmaker: Maker, redis: Redis
) -> None:
    _, issued = await make_webhook(live_sessionmaker, 5005)
    client = await start(
        make_settings(public_base_url=BASE_URL, webhook_ip_allowlist="*", alert_rate_per_token=1)
    )
    try:
        url = f"/hook/{token_of(issued)}"
        responses = [
            await client.post(url, json=alert_body(issued, alert_id=f"a{n}")) for n in range(8)
        ]
    finally:
        await client.close()
    statuses = [response.status for response in responses]
    assert statuses == [200] * 5 + [429] * 3  # a burst of 5, then one a minute
    # The next token comes within the minute: Retry-After says when (#13).
    waits = [int(response.headers["Retry-After"]) for response in responses[5:]]
    assert all(1 <= wait <= 60 for wait in waits), waits
    assert "Retry-After" not in responses[0].headers
    assert {response.headers["Server"] for response in responses} == {"tv2dydx"}
    rows = await alerts(live_sessionmaker)
    # Only the first refusal of a window is recorded: a flood cannot fill the ledger.
    assert [row.state for row in rows] == [AlertState.ACCEPTED] * 5 + [AlertState.REJECTED]
    assert rows[-1].reason == "rate limited (token)"
    assert len(await queued_jobs(redis)) == 5


async def test_alerts_over_the_per_ip_rate_get_429(
    make_settings: Callable[..., Settings], live_sessionmaker: Maker, redis: Redis
) -> None:
    hooks = [await make_webhook(live_sessionmaker, 5100 + n) for n in range(7)]
    client = await start(
        make_settings(public_base_url=BASE_URL, webhook_ip_allowlist="*", alert_rate_per_ip=1)
    )
    try:
        responses = [
            await client.post(f"/hook/{token_of(issued)}", json=alert_body(issued))
            for _, issued in hooks
        ]
    finally:
        await client.close()
    assert [response.status for response in responses] == [200] * 5 + [429] * 2
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in responses[5:])
    assert await count(live_sessionmaker, Alert, Alert.reason == "rate limited (ip)") == 1


async def test_a_paused_user_gets_409(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker, redis: Redis
) -> None:
    user_id, issued = hook
    async with live_sessionmaker() as session:
        await session.execute(update(User).where(User.id == user_id).values(paused=True))
        await session.commit()
    response = await client.post(f"/hook/{token_of(issued)}", json=alert_body(issued))
    assert response.status == 409
    [alert] = await alerts(live_sessionmaker)
    assert (alert.state, alert.reason) == (AlertState.REJECTED, "trading is paused")
    assert await count(live_sessionmaker, Notification) == 0
    await assert_nothing_accepted(live_sessionmaker, redis)


async def test_rotation_stops_the_old_url_and_passphrase_at_once(
    client: TestClient, hook: tuple[int, IssuedWebhook], live_sessionmaker: Maker
) -> None:
    user_id, old = hook
    new = await WebhookService(live_sessionmaker, BASE_URL).rotate(user_id)
    assert (await client.post(f"/hook/{token_of(old)}", json=alert_body(old))).status == 404
    stale_pass = {**alert_body(new), "passphrase": old.passphrase}
    assert (await client.post(f"/hook/{token_of(new)}", json=stale_pass)).status == 401
    assert (await client.post(f"/hook/{token_of(new)}", json=alert_body(new))).status == 200


# Never a 5xx ------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_field_names = st.sampled_from(
    [
        "market",
        "action",
        "order",
        "position",
        "size",
        "size_usd",
        "size_pct",
        "sizeUsd",
        "sizeByLeverage",
        "order_type",
        "price",
        "slippage_pct",
        "slippagePercentage",
        "tp_pct",
        "tp_price",
        "sl_pct",
        "sl_price",
        "trail_pct",
        "reverse",
        "alert_id",
        "time",
        "strategy",
        "exchange",
    ]
) | st.text(max_size=12)
_scalars = (
    st.text(max_size=40)
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
    | st.decimals(allow_nan=False, allow_infinity=False).map(str)
    | st.sampled_from(["BTCUSDT", "buy", "sell", "close", "long", "flat", "limit", "1e309"])
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    raw=st.binary(max_size=4200)
    | _json_values.map(lambda value: json.dumps(value).encode())
    | st.dictionaries(_field_names, _scalars, max_size=10).map(
        lambda fields: json.dumps({"passphrase": "PASSPHRASE", **fields}).encode()
    ),
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-anything"]),
)
async def test_arbitrary_bytes_and_json_never_get_a_5xx(
    open_client: TestClient, hook: tuple[int, IssuedWebhook], raw: bytes, content_type: str
) -> None:
    _, issued = hook
    raw = raw.replace(b"PASSPHRASE", issued.passphrase.encode())
    response = await open_client.post(
        f"/hook/{token_of(issued)}", data=raw, headers={"Content-Type": content_type}
    )
    assert response.status < 500, (raw, await response.text())
    assert response.status in {200, 400, 401, 409, 413, 422, 429}


async def test_with_postgresql_down_the_answer_is_503_and_nothing_is_queued(
    make_settings: Callable[..., Settings], redis: Redis
) -> None:
    client = await start(
        make_settings(database_url="postgresql://x@127.0.0.1:1/none", webhook_ip_allowlist="*")
    )
    try:
        response = await client.post("/hook/" + "A" * 32, json={"passphrase": "x"})
        assert response.status == 503  # TradingView's delivery failed; nothing was accepted
        assert (await response.json())["error"] == "unavailable"
    finally:
        await client.close()
    assert await queued_jobs(redis) == []
