"""The wallet-link page and its two JSON calls.

``GET /link/{token}`` serves one self-contained page (inline script and style allowed by a
per-response CSP nonce; nothing third-party). The page asks the injected wallet for its
address and chain, fetches the message to sign from ``POST /link/{token}/message``, has the
wallet sign it and posts the signature to ``POST /link/{token}/verify``.

The page is also a Telegram Mini App (the bot's ``web_app`` button): opened from Telegram it
sends the ``initData`` Telegram signed with both calls, and they are refused unless it is
valid, fresh and the link's own user's. Opened in a wallet's browser (no ``initData``), the
link token alone counts, as before.
"""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from core.services.wallet_link.errors import (
    AddressTakenError,
    AlreadyLinkedError,
    InitDataInvalidError,
    InvalidInputError,
    LinkUnavailableError,
    OtherTelegramUserError,
    RpcUnavailableError,
    WalletLinkError,
)
from webhook_server.keys import LINK_LIMITER, WALLET_LINK
from webhook_server.routes.pages import (
    BodyError,
    json_answer,
    json_body,
    rate_limited,
    render_page,
    same_origin,
    too_many,
)

routes = web.RouteTableDef()

_STATUS: list[tuple[type[WalletLinkError], int]] = [
    (InvalidInputError, 400),
    (InitDataInvalidError, 401),
    (OtherTelegramUserError, 403),
    (LinkUnavailableError, 404),
    (AlreadyLinkedError, 409),
    (AddressTakenError, 409),
    (RpcUnavailableError, 503),
]
_INIT_DATA: dict[str, type] = {"initData": str}


def _page(request: web.Request, *, ready: bool) -> web.Response:
    site = request.app[WALLET_LINK].site
    values = {
        "STATE": "ready" if ready else "gone",
        "CHAIN_ID": str(site.chain_id),
        "CHAIN_NAME": escape(site.chain_name),
    }
    return render_page("link.html", values, status=200 if ready else 404)


def _refusal(exc: WalletLinkError) -> web.Response:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 422)
    return json_answer({"ok": False, "error": exc.message, "code": exc.code}, status)


async def _body(request: web.Request, fields: dict[str, type]) -> dict[str, Any]:
    try:
        return await json_body(request, fields, _INIT_DATA)
    except BodyError as exc:
        raise InvalidInputError(exc.message) from None


def _init_data(body: dict[str, Any]) -> str | None:
    """The Mini App ``initData``, or None from a plain browser (an empty one is none)."""
    value = body.get("initData")
    return value if isinstance(value, str) and value else None


@routes.get("/link/{token}")
async def link_page(request: web.Request) -> web.Response:
    """The page, or a 404 page for an unknown, used or expired link (not saying which)."""
    if (wait := await rate_limited(request, request.app[LINK_LIMITER])) is not None:
        return too_many(wait, page=True)
    try:
        await request.app[WALLET_LINK].check_link(request.match_info["token"])
    except LinkUnavailableError:
        return _page(request, ready=False)
    return _page(request, ready=True)


@routes.post("/link/{token}/message")
async def link_message(request: web.Request) -> web.Response:
    """``{address, chainId[, initData]}`` → ``{ok, message}``: the EIP-4361 text to sign."""
    if (wait := await rate_limited(request, request.app[LINK_LIMITER])) is not None:
        return too_many(wait, page=False)
    if not same_origin(request):
        return json_answer({"ok": False, "error": "Cross-origin request refused."}, 403)
    try:
        body = await _body(request, {"address": str, "chainId": int})
        message = await request.app[WALLET_LINK].prepare(
            request.match_info["token"],
            body["address"],
            body["chainId"],
            init_data=_init_data(body),
        )
    except WalletLinkError as exc:
        return _refusal(exc)
    return json_answer({"ok": True, "message": message})


@routes.post("/link/{token}/verify")
async def link_verify(request: web.Request) -> web.Response:
    """``{message, signature[, initData]}`` → ``{ok, address}``, or ``{ok: false, error,
    code}``."""
    if (wait := await rate_limited(request, request.app[LINK_LIMITER])) is not None:
        return too_many(wait, page=False)
    if not same_origin(request):
        return json_answer({"ok": False, "error": "Cross-origin request refused."}, 403)
    try:
        body = await _body(request, {"message": str, "signature": str})
        wallet = await request.app[WALLET_LINK].verify(
            request.match_info["token"],
            body["message"],
            body["signature"],
            init_data=_init_data(body),
        )
    except WalletLinkError as exc:
        return _refusal(exc)
    return json_answer({"ok": True, "address": wallet.address})
