"""The Mini App key form: ``GET /key/{token}`` (the page) and ``POST /key/{token}`` (the key).

The page is self-contained (inline script and style under a per-response CSP nonce, nothing
third-party, no analytics) and posts ``{initData, ownerAddress, key}`` as JSON, so the key is
in a request body only: never in a URL, a log line (bodies are not logged) or a redirect.
Refusals answer ``{ok: false, error, code}`` with a short message the page shows.
"""

from __future__ import annotations

from aiohttp import web

from core.services.key_entry import EntryRefusal, KeyEntryError
from webhook_server.keys import KEY_ENTRY, KEY_LIMITER
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

_STATUS: dict[EntryRefusal, int] = {
    EntryRefusal.NOT_IN_TELEGRAM: 401,
    EntryRefusal.BAD_INIT_DATA: 401,
    EntryRefusal.STALE_INIT_DATA: 401,
    EntryRefusal.OTHER_USER: 403,
    EntryRefusal.FORM_UNAVAILABLE: 404,
    EntryRefusal.FORM_USED: 409,
    EntryRefusal.KEY_REFUSED: 422,
    EntryRefusal.EXCHANGE_UNAVAILABLE: 503,
}
_FIELDS: dict[str, type] = {"initData": str, "ownerAddress": str, "key": str}


@routes.get("/key/{token}")
async def key_page(request: web.Request) -> web.Response:
    """The form, or a 404 page for an unknown, used or expired form (not saying which)."""
    if (wait := await rate_limited(request, request.app[KEY_LIMITER])) is not None:
        return too_many(wait, page=True)
    try:
        await request.app[KEY_ENTRY].check_form(request.match_info["token"])
    except KeyEntryError:
        return render_page("key.html", {"STATE": "gone"}, status=404)
    return render_page("key.html", {"STATE": "ready"})


@routes.post("/key/{token}")
async def key_submit(request: web.Request) -> web.Response:
    """``{initData, ownerAddress, key}`` → ``{ok, ownerAddress, keyAddress}``."""
    if (wait := await rate_limited(request, request.app[KEY_LIMITER])) is not None:
        return too_many(wait, page=False)
    if not same_origin(request):
        return json_answer({"ok": False, "error": "Cross-origin request refused."}, 403)
    try:
        body = await json_body(request, _FIELDS)
    except BodyError as exc:
        return json_answer({"ok": False, "error": exc.message, "code": "invalid_input"}, 400)
    try:
        view = await request.app[KEY_ENTRY].submit(
            request.match_info["token"], body["initData"], body["ownerAddress"], body["key"]
        )
    except KeyEntryError as exc:
        status = _STATUS[exc.refusal]
        return json_answer({"ok": False, "error": exc.message, "code": exc.refusal.value}, status)
    return json_answer(
        {"ok": True, "ownerAddress": view.owner_address, "keyAddress": view.key_address}
    )
