"""``tv2dydx demo`` as a real process, driven in headless Chromium the way a newcomer would:
/start, the declaration, the simulated key, /webhook, an alert from the side panel, the fill,
the take-profit after moving the price, and the /pnl chart."""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from doubles.telegram import PNG_SIGNATURE
from tests.conftest import ADMIN_URL, REDIS_BASE, REDIS_DB, drop_database
from tests.e2e.test_cli import TV2DYDX, bare_env
from tests.integration.test_link_page import CHROMIUM, CHROMIUM_ARGS

# Starting the whole product on a busy machine takes a while; the module's own deadlines apply.
pytestmark = pytest.mark.timeout(600)
URL_RE = re.compile(r"^demo: open (http://127\.0\.0\.1:\d+/) — everything here is simulated")
READY_WITHIN = 240.0
STEP_MS = 60_000


@dataclass
class Demo:
    """The running demo: its page, its process and what it printed."""

    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)


def _reader(process: subprocess.Popen[str], out: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        out.put(line.rstrip("\n"))
    out.put(None)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """``tv2dydx demo`` on free ports, on a database and Redis db of this test run."""
    name = f"tv2dydx_demo_test_{os.getpid()}_{secrets.token_hex(3)}"
    env = bare_env(
        DATABASE_URL=f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}",
        REDIS_URL=f"{REDIS_BASE}/{REDIS_DB}",
        HOME=os.environ.get("HOME", "/tmp"),
    )
    process = subprocess.Popen(
        [TV2DYDX, "demo", "--port", "0", "--web-port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(process, lines), daemon=True).start()
    printed: list[str] = []
    url = None
    deadline = time.monotonic() + READY_WITHIN
    while url is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        printed.append(line)
        found = URL_RE.match(line)
        url = found.group(1) if found else None
    try:
        assert url is not None, "the demo never printed its page:\n" + "\n".join(printed)
        yield Demo(url, process, printed)
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        code = process.wait(60)
        rest = []
        while (line := lines.get(timeout=5)) is not None:
            rest.append(line)
        printed.extend(rest)
        drop_database(name)
    assert code == 0, "\n".join(printed)
    assert printed[-1] == "demo: stopped"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


async def bot_says(page: Page, text: str) -> None:
    """A bot bubble containing ``text`` appears."""
    await page.locator(".msg.bot .bubble", has_text=text).last.wait_for(timeout=STEP_MS)


async def command(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


def test_help_says_what_the_demo_is() -> None:
    shown = subprocess.run(
        [TV2DYDX, "demo", "--help"], env=bare_env(), capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    assert "SIMULATED — no real Telegram, no real exchange" in text
    for option in ("--host", "--port", "--web-port", "DATABASE_URL", "REDIS_URL"):
        assert option in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DYDX_NODE_URL", "dydx-ops-grpc.kingnodes.com:443"),
        ("DYDX_INDEXER_URL", "https://indexer.dydx.trade"),
        ("DYDX_NETWORK", "mainnet"),
        ("TELEGRAM_API_BASE", "https://api.telegram.org"),
    ],
)
def test_the_demo_refuses_an_environment_that_names_a_real_service(name: str, value: str) -> None:
    refused = subprocess.run(
        [TV2DYDX, "demo", "--port", "0", "--web-port", "0"],
        # An unreachable database: had the demo gone on, it would have failed on it instead.
        env=bare_env(DATABASE_URL="postgresql://nobody@127.0.0.1:1/tv2dydx_demo", **{name: value}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert refused.stdout == "SIMULATED — no real Telegram, no real exchange: tv2dydx demo\n"
    lines = refused.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"demo: refusing to start: {name}")


@pytest.mark.parametrize("taken", ["--port", "--web-port"])
def test_a_port_in_use_is_one_line_and_nothing_starts(taken: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        ports = {"--port": "0", "--web-port": "0", taken: str(port)}
        failed = subprocess.run(
            [TV2DYDX, "demo", *(item for pair in ports.items() for item in pair)],
            env=bare_env(DATABASE_URL="postgresql://nobody@127.0.0.1:1/tv2dydx_demo"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    assert len(lines) == 1, failed.stderr
    assert str(port) in lines[0]
    assert "in use" in lines[0]


def test_the_first_line_says_it_is_simulated(demo: Demo) -> None:
    assert demo.lines[0] == "SIMULATED — no real Telegram, no real exchange: tv2dydx demo"
    assert any(line.startswith("demo: ready in ") for line in demo.lines)


async def test_a_newcomer_trades_through_the_demo_page_in_chromium(
    demo: Demo, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        response = await page.goto(demo.url)
        assert response is not None
        assert "script-src 'self'" in response.headers["content-security-policy"]
        await expect(page.locator(".banner")).to_contain_text("SIMULATED")
        await expect(page.locator("#owner")).to_have_value(re.compile("^dydx1"), timeout=STEP_MS)

        await page.click("#shortcuts button[data-command='/start']")
        await bot_says(page, "welcome to tv2dydx")
        await page.locator(".keyboard button", has_text="I confirm").click()
        await bot_says(page, "Thank you")

        await command(page, "/key")
        await bot_says(page, "Step 1 of 2")
        await page.click("[data-fill='owner']")
        await page.press("#text", "Enter")
        await bot_says(page, "Step 2 of 2")
        await page.click("[data-fill='api-key']")
        await page.press("#text", "Enter")
        await bot_says(page, "Trading key connected")
        key = await page.locator("#api-key").input_value()
        # The bot deleted the message carrying the key: the page shows it no more.
        await expect(page.locator(".msg.user", has_text=key[2:12])).to_have_count(0)

        await command(page, "/webhook")
        await bot_says(page, "Your TradingView webhook")
        await expect(page.locator("#hook-url")).to_have_value(
            re.compile(r"^http://127\.0\.0\.1:\d+/hook/"), timeout=STEP_MS
        )
        await expect(page.locator("#alert-body")).to_have_value(re.compile('"passphrase"'))

        await page.click("#fire")
        await expect(page.locator("#alert-result")).to_contain_text("HTTP 200")
        await bot_says(page, "Bought 0.1 ETH-USD")
        await bot_says(page, "Protected")

        await page.click("[data-move='2']")
        await expect(page.locator("#price")).to_have_text("$3,060")
        await bot_says(page, "Take-profit hit")

        await command(page, "/pnl")
        chart = page.locator(".msg.bot .bubble img").last
        await chart.wait_for(timeout=STEP_MS)
        await expect(chart).to_have_attribute("src", re.compile("^/files/"))
        source = await chart.get_attribute("src")
        assert source is not None
        async with httpx.AsyncClient() as http:
            png = await http.get(demo.url.rstrip("/") + source, timeout=10)
        assert png.content.startswith(PNG_SIGNATURE)
        assert await chart.evaluate("image => image.complete && image.naturalWidth > 0")
        await bot_says(page, "P&L")
        assert errors == []
    finally:
        await context.close()
