"""Redaction: secrets never reach a log line, by key name or by shape."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from aiohttp import ClientSession, web

from core.runtime.logs import REDACTED, configure_logging, redact_processor, redact_value
from webhook_server.access_log import RedactingAccessLogger

PRIVATE_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
MNEMONIC = "abandon ability able about above absent absorb abstract absurd abuse access accident"
WEBHOOK_TOKEN = "Zx8fQ2m9T0kLwA7pR3sV1yB6nC4dE5gH"


def _lines(captured: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


def test_processor_removes_key_phrase_and_token_from_an_event() -> None:
    event = {
        "event": f"user pasted {PRIVATE_KEY} and {MNEMONIC} then",
        "url": f"https://tv.example.com/hook/{WEBHOOK_TOKEN}",
        "nested": {"api_key": "anything", "items": [f"0x{PRIVATE_KEY}"]},
        "passphrase": "hunter2",
        "tx_hash": PRIVATE_KEY.upper(),
    }
    out = redact_processor(None, "info", dict(event))
    flat = json.dumps(out)
    for secret in (PRIVATE_KEY, "abandon ability", WEBHOOK_TOKEN, "hunter2", "anything"):
        assert secret not in flat
    assert out["url"] == "https://tv.example.com/hook/***"
    assert out["passphrase"] == REDACTED
    assert out["nested"]["api_key"] == REDACTED
    # A transaction hash is not a secret and stays readable.
    assert out["tx_hash"] == PRIVATE_KEY.upper()


def test_ordinary_sentences_and_short_hex_survive() -> None:
    text = "order 42 filled at 3000.5 for user abc with id deadbeef after a short wait"
    assert redact_value(text) == text


def test_eleven_words_are_not_a_phrase_but_twelve_are() -> None:
    words = MNEMONIC.split()
    assert redact_value(" ".join(words[:11])) == " ".join(words[:11])
    assert redact_value("x: " + MNEMONIC) == f"x: {REDACTED}"


def test_bot_token_in_a_url_is_removed() -> None:
    line = "POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe"
    assert "AAHdqTcv" not in redact_value(line)


def test_stdlib_and_structlog_lines_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    logging.getLogger("some.library").warning("leaked %s", PRIVATE_KEY)
    structlog.get_logger("tv2dydx").info("event", mnemonic=MNEMONIC, note=MNEMONIC)
    try:
        raise ValueError(f"bad key {PRIVATE_KEY}")
    except ValueError:
        structlog.get_logger("tv2dydx").exception("failed")
    captured = capsys.readouterr().out
    assert PRIVATE_KEY not in captured
    assert "abandon ability" not in captured
    lines = _lines(captured)
    assert {line["event"] for line in lines} >= {f"leaked {REDACTED}", "event", "failed"}


async def test_access_log_line_hides_the_webhook_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")

    async def accept(_request: web.Request) -> web.Response:
        return web.json_response({"status": "accepted"})

    app = web.Application()
    app.router.add_post("/hook/{token}", accept)
    runner = web.AppRunner(app, access_log_class=RedactingAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with ClientSession() as http:
            url = f"http://127.0.0.1:{port}/hook/{WEBHOOK_TOKEN}?x=1"
            async with http.post(url, data=b"{}") as response:
                assert response.status == 200
    finally:
        await runner.cleanup()
    captured = capsys.readouterr().out
    assert WEBHOOK_TOKEN not in captured
    access = [line for line in _lines(captured) if line["event"] == "http_request"]
    assert access
    assert access[0]["path"] == "/hook/***?x=1"
    assert access[0]["status"] == 200


def test_sentry_starts_only_with_a_dsn_and_scrubs_events() -> None:
    import sentry_sdk

    from core.runtime.logs import init_sentry

    assert init_sentry(None, environment="test", release="t") is False
    assert init_sentry("", environment="test", release="t") is False
    try:
        assert init_sentry("http://public@127.0.0.1:9/1", environment="test", release="t")
        before_send = sentry_sdk.get_client().options["before_send"]
        event = {
            "message": f"boom {PRIVATE_KEY}",
            "extra": {"passphrase": "hunter2", "phrase": MNEMONIC},
            "request": {"url": f"https://x.example.com/hook/{WEBHOOK_TOKEN}"},
        }
        scrubbed = json.dumps(before_send(event, {}))
        for secret in (PRIVATE_KEY, "hunter2", "abandon ability", WEBHOOK_TOKEN):
            assert secret not in scrubbed
    finally:
        sentry_sdk.init()  # back to a disabled client


@pytest.mark.parametrize(("level", "routine_written"), [("INFO", False), ("DEBUG", True)])
def test_arqs_per_job_lines_are_debug_and_its_other_lines_stay(
    capsys: pytest.CaptureFixture[str], level: str, routine_written: bool
) -> None:
    configure_logging(level, "json")
    arq = logging.getLogger("arq.worker")
    # The lines arq 0.28 writes (arq/worker.py), with its own format strings.
    arq.info("%6.2fs → %s(%s)%s", 0.01, "alert:7:execute_alert", "7", "")
    arq.info("%6.2fs ← %s ● %s", 0.02, "alert:7:execute_alert", "filled")
    arq.info("Starting worker for %d functions: %s", 3, "execute_alert")
    arq.info("%6.2fs ↻ %s retrying job in %0.2fs", 0.5, "alert:7:execute_alert", 1.0)
    events = [line["event"] for line in _lines(capsys.readouterr().out)]
    assert "Starting worker for 3 functions: execute_alert" in events
    assert any("retrying job" in event for event in events)
    assert any("→ alert:7" in str(event) for event in events) is routine_written
    assert any("← alert:7" in str(event) for event in events) is routine_written
    configure_logging("INFO", "json")
