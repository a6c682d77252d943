"""Screenshots of the demo page for the README (docs/images/demo-*.png).

Starts ``python -m demo`` on free ports, walks the two-minute tour in headless Chromium
(Debian's ``/usr/bin/chromium``) and saves the page at each key moment. Needs the test extras
(playwright) and the local PostgreSQL and Redis the demo uses::

    .venv/bin/python docs/demo_screenshots.py
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

from playwright.async_api import Page, async_playwright, expect

IMAGES = Path(__file__).parent / "images"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 900}
URL_RE = re.compile(r"open (http://\S+/)")


def start_demo() -> tuple[subprocess.Popen[str], str]:
    """The demo as a process, and the page's URL once it is ready."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "demo", "--port", "0", "--web-port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert demo.stdout is not None
    for line in demo.stdout:
        print(line, end="")
        found = URL_RE.search(line)
        if found:
            return demo, found.group(1)
    raise SystemExit(f"the demo exited with code {demo.wait()}")


async def bot_says(page: Page, text: str) -> None:
    """Wait for a bot bubble containing ``text``."""
    await page.locator(".msg.bot .bubble", has_text=text).last.wait_for(timeout=60_000)


async def top_of(page: Page, text: str) -> None:
    """Scroll the chat so the bot's latest message with ``text`` starts at the top."""
    bubble = page.locator(".msg.bot", has_text=text).last
    await bubble.evaluate("node => node.scrollIntoView({block: 'start'})")


async def panel_at(page: Page, title: str) -> None:
    """Scroll the side panel so the card titled ``title`` starts at the top."""
    card = page.locator(".panel .card", has=page.locator("h2", has_text=title))
    await card.evaluate("node => node.scrollIntoView({block: 'start'})")


async def tour(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("#owner")).to_have_value(re.compile("^dydx1"), timeout=30_000)
    await page.click("#shortcuts button[data-command='/start']")
    await page.locator(".keyboard button", has_text="I confirm").wait_for()
    await page.screenshot(path=IMAGES / "demo-start.png")
    await page.click(".keyboard button:has-text('I confirm')")
    await bot_says(page, "Thank you")
    await page.click("#shortcuts button[data-command='/key']")
    await bot_says(page, "Step 1 of 2")
    await page.click("[data-fill='owner']")
    await page.press("#text", "Enter")
    await bot_says(page, "Step 2 of 2")
    await page.click("[data-fill='api-key']")
    await page.press("#text", "Enter")
    await bot_says(page, "Trading key connected")
    await page.click("#shortcuts button[data-command='/webhook']")
    await bot_says(page, "Your TradingView webhook")
    await expect(page.locator("#hook-url")).to_have_value(re.compile("/hook/"), timeout=30_000)
    await top_of(page, "Your TradingView webhook")
    await page.screenshot(path=IMAGES / "demo-webhook.png")
    await page.click("#fire")
    await bot_says(page, "Bought")
    await bot_says(page, "Protected")
    await panel_at(page, "TradingView alert")
    await page.wait_for_timeout(500)
    await page.screenshot(path=IMAGES / "demo-fill.png")
    await page.click("[data-move='2']")
    await bot_says(page, "Take-profit hit")
    await page.click("#shortcuts button[data-command='/pnl']")
    await page.locator(".msg.bot .bubble img").last.wait_for()
    await top_of(page, "P&L")
    await panel_at(page, "TradingView alert")
    await page.wait_for_timeout(1000)
    await page.screenshot(path=IMAGES / "demo-pnl.png")


async def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    demo, url = start_demo()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
            )
            page = await browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            page.on("console", lambda message: print("console:", message.text))
            page.on("pageerror", lambda error: print("page error:", error))
            try:
                await tour(page, url)
            finally:
                await browser.close()
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(60)
    print("saved:", ", ".join(sorted(p.name for p in IMAGES.glob("demo-*.png"))))


if __name__ == "__main__":
    asyncio.run(main())
