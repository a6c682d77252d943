"""The demo page and its small JSON API: the page drives the simulated Telegram user and the
simulated market; the product itself is reached only as a real client would reach it."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from demo.chat import fill_placeholders, issued_webhook, snapshot
from demo.stack import Doubles

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BANNER = "SIMULATED — no real Telegram, no real exchange"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Server": "tv2dydx-demo",
}
#: Every API call carries it: a page of another site cannot (it would need a CORS preflight).
API_HEADER = "X-Tv2dydx-Demo"
STATIC = {
    "index.html": "text/html",
    "demo.css": "text/css",
    "demo.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
MAX_TEXT = 4096
MAX_ALERT_BYTES = 16 * 1024
MAX_PRICE = Decimal(10_000_000)
LONG_POLL_SECONDS = 20.0
DOUBLES_KEY = web.AppKey("doubles", Doubles)
BASE_URL_KEY = web.AppKey("public_base_url", str)
HTTP_KEY = web.AppKey("http", aiohttp.ClientSession)


class BadRequest(web.HTTPBadRequest):
    """A 400 with a short JSON reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(text=json.dumps({"error": reason}), content_type="application/json")


@web.middleware
async def secured(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on everything; the API only for the page itself (the files are
    plain GETs, which ``<img>`` and download links make without custom headers)."""
    if request.path.startswith("/api/") and request.headers.get(API_HEADER) != "1":
        raise web.HTTPForbidden(text="the demo API answers the demo page only")
    response = await handler(request)
    response.headers.update(HEADERS)
    return response


async def _on_double(doubles: Doubles, fn: Callable[[], T]) -> T:
    """Run ``fn`` on the Telegram double's thread (where its state may be read)."""
    box: tuple[T] = await doubles.telegram.wait_until(lambda: (fn(),), 5.0)
    return box[0]


async def _json(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_ALERT_BYTES * 2:
        raise BadRequest("too large")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("not a JSON object")
    return body


async def static(request: web.Request) -> web.Response:
    """The page, its stylesheet and its script (package data)."""
    name = request.match_info.get("name", "index.html")
    if name not in STATIC:
        raise web.HTTPNotFound()
    data = resources.files("demo").joinpath("static", name).read_bytes()
    return web.Response(body=data, content_type=STATIC[name], charset="utf-8")


async def _prices(doubles: Doubles) -> dict[str, Decimal]:
    state = doubles.dydx.state
    return await doubles.dydx.acall(
        lambda: {ticker: market.oracle_price for ticker, market in state.markets.items()}
    )


async def get_state(request: web.Request) -> web.Response:
    """The side panel: the simulated account, the webhook once issued, the market."""
    doubles = request.app[DOUBLES_KEY]
    base_url = request.app[BASE_URL_KEY]
    trader = doubles.trader
    hook = await _on_double(doubles, lambda: issued_webhook(doubles.user, base_url))
    prices = await _prices(doubles)
    return web.json_response(
        {
            "banner": BANNER,
            "bot": {
                "name": doubles.telegram.bot.first_name,
                "username": doubles.telegram.bot.username,
            },
            "trader": {
                "owner_address": trader.owner_address,
                "api_key": f"0x{trader.api_private_key_hex}",
                "api_address": trader.api_address,
            },
            "webhook": hook,
            "web_url": base_url,
            "prices": {ticker: str(price) for ticker, price in prices.items()},
        }
    )


async def get_chat(request: web.Request) -> web.Response:
    """The chat; with ``?rev=`` it waits (up to 20 s) until it differs from that revision."""
    doubles = request.app[DOUBLES_KEY]
    known = request.query.get("rev", "")

    def changed() -> dict[str, Any] | None:
        current = snapshot(doubles.user)
        return current if current["rev"] != known else None

    try:
        view = await doubles.telegram.wait_until(changed, LONG_POLL_SECONDS if known else 5.0)
    except TimeoutError:
        return web.json_response({"rev": known, "unchanged": True})
    return web.json_response(view)


async def post_send(request: web.Request) -> web.Response:
    """The user sends a text message to the bot."""
    body = await _json(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise BadRequest(f"a message is 1 to {MAX_TEXT} characters")
    sent = await request.app[DOUBLES_KEY].user.send(text.strip())
    return web.json_response({"id": sent.message_id})


async def post_press(request: web.Request) -> web.Response:
    """The user presses an inline button; the bot's answer (a toast) if it gives one."""
    doubles = request.app[DOUBLES_KEY]
    body = await _json(request)
    message_id, data = body.get("message_id"), body.get("data")
    if not isinstance(message_id, int) or not isinstance(data, str) or len(data) > 64:
        raise BadRequest("give message_id and the button's data")

    def find() -> Any:
        return next((m for m in doubles.user.bot_messages if m.message_id == message_id), None)

    message = await _on_double(doubles, find)
    if message is None:
        raise BadRequest("no such message")
    try:
        answer = await doubles.user.press(message, data, timeout=15)
    except (LookupError, ValueError) as exc:
        raise BadRequest(str(exc).split(";")[0][:200]) from None
    except TimeoutError:
        return web.json_response({"toast": "The bot did not answer the button."})
    toast = answer.text if answer is not None else None
    return web.json_response({"toast": toast, "alert": bool(answer and answer.show_alert)})


async def get_file(request: web.Request) -> web.Response:
    """A photo or document the bot sent."""
    doubles = request.app[DOUBLES_KEY]
    file_id = request.match_info["file_id"]

    def find() -> tuple[bytes, str, str | None] | None:
        for message in doubles.user.bot_messages:
            for stored in [*message.photo_files, message.document_file]:
                if stored is not None and stored.file_id == file_id:
                    kind = stored.mime_type or _image_type(stored.data)
                    return stored.data, kind, stored.filename
        return None

    found = await _on_double(doubles, find)
    if found is None:
        raise web.HTTPNotFound()
    data, kind, filename = found
    response = web.Response(body=data, content_type=kind)
    if filename and not kind.startswith("image/"):
        safe = "".join(c for c in filename if c.isalnum() or c in "._-") or "file"
        response.headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    return response


def _image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "application/octet-stream"


async def post_alert(request: web.Request) -> web.Response:
    """Send the alert to the webhook URL, as TradingView would (only to our web server)."""
    doubles = request.app[DOUBLES_KEY]
    base_url = request.app[BASE_URL_KEY]
    body = await _json(request)
    url, message = body.get("url"), body.get("message")
    if not isinstance(url, str) or not re.fullmatch(
        re.escape(base_url) + r"/hook/[\w-]{1,128}", url
    ):
        raise BadRequest(f"the webhook URL must start with {base_url}/hook/ (send /webhook)")
    if not isinstance(message, str) or not message.strip():
        raise BadRequest("the alert message is empty")
    if len(message.encode()) > MAX_ALERT_BYTES:
        raise BadRequest("the alert message is too long")
    filled = fill_placeholders(message, await _prices(doubles))
    try:
        json.loads(filled)
        content_type = "application/json"
    except json.JSONDecodeError:
        content_type = "text/plain; charset=utf-8"  # what TradingView sends for plain text
    http = request.app[HTTP_KEY]
    try:
        async with http.post(
            url, data=filled.encode(), headers={"Content-Type": content_type}
        ) as response:
            answer = (await response.text())[:2000]
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return web.json_response({"status": 0, "answer": f"not delivered: {type(exc).__name__}"})
    return web.json_response({"status": status, "answer": answer, "sent": filled})


async def post_price(request: web.Request) -> web.Response:
    """Move a simulated market's oracle price (fills and triggers act at the next block)."""
    doubles = request.app[DOUBLES_KEY]
    body = await _json(request)
    ticker = body.get("ticker")
    prices = await _prices(doubles)
    if ticker not in prices:
        raise BadRequest(f"markets: {', '.join(sorted(prices))}")
    try:
        price = Decimal(str(body.get("price")))
    except InvalidOperation:
        raise BadRequest("the price is not a number") from None
    if not price.is_finite() or price <= 0 or price > MAX_PRICE:
        raise BadRequest(f"a price is above 0 and at most {MAX_PRICE}")
    await doubles.dydx.acall(doubles.dydx.state.set_oracle_price, ticker, price)
    return web.json_response({"ticker": ticker, "price": str(price)})


async def _http_session(app: web.Application) -> Any:
    app[HTTP_KEY] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
    yield
    await app[HTTP_KEY].close()


def create_app(doubles: Doubles, public_base_url: str) -> web.Application:
    """The demo page's server."""
    app = web.Application(middlewares=[secured], client_max_size=MAX_ALERT_BYTES * 2)
    app[DOUBLES_KEY] = doubles
    app[BASE_URL_KEY] = public_base_url
    app.cleanup_ctx.append(_http_session)
    app.router.add_get("/", static)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/state", get_state)
    app.router.add_get("/api/chat", get_chat)
    app.router.add_post("/api/send", post_send)
    app.router.add_post("/api/press", post_press)
    app.router.add_get("/files/{file_id}", get_file)
    app.router.add_post("/api/alert", post_alert)
    app.router.add_post("/api/price", post_price)
    return app
