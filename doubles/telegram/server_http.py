"""The Telegram double's HTTP side: routing Bot API requests to the method handlers, with
Telegram's answers for bad tokens, unknown methods, floods and outages."""

from __future__ import annotations

import json
import logging
import re
import traceback
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from . import errors
from .errors import ApiError, OutageError, bad_request
from .media import Upload
from .methods import (
    HANDLERS,
    LOOPBACK_HOSTS,
    Answer,
    Context,
    Params,
    known_method_names,
    normalize_params,
)
from .server_base import DoubleBase
from .state_world import ApiCall, BotState

log = logging.getLogger(__name__)

TOKEN_RE = re.compile(r"^(\d{1,20}):([A-Za-z0-9_-]+)$")
_API_PATH_RE = re.compile(r"^/bot([^/]*)/([^/]*)$")
_FILE_PATH_RE = re.compile(r"^/file/bot([^/]*)/(.+)$")
MAX_REQUEST_BYTES = 64 * 1024 * 1024
_IMPLEMENTED = {name.lower(): name for name in HANDLERS}


class HttpApi(DoubleBase):
    """Serving ``/bot<token>/<method>`` and ``/file/bot<token>/<path>`` like api.telegram.org:
    routing, tokens, floods, outages, the call log and file downloads."""

    def _canonical(self, name: str | None) -> str | None:
        if not name:
            return None
        lowered = name.lower()
        implemented = _IMPLEMENTED.get(lowered)
        if implemented is not None:
            return implemented
        # Only names the double does not implement pay for importing aiogram's method list.
        if self._known is None:
            self._known = known_method_names()
        return self._known.get(lowered)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/file/"):
            return await self._serve_file(request)
        match = _API_PATH_RE.match(request.path)
        if match is None:
            return json_response(404, errors.NOT_FOUND)
        token, name = match.groups()
        world = self._world
        bot = world.bots.get(token)
        call = ApiCall(
            seq=next(world.call_counter),
            method=name,
            params={},
            bot_id=bot.identity.id if bot else None,
        )
        world.calls.append(call)
        try:
            if self.is_down:
                return self._outage(request, call)
            if not TOKEN_RE.match(token):
                return self._finish(call, 404, errors.NOT_FOUND)
            if bot is None:
                return self._finish(call, 401, errors.UNAUTHORIZED)
            try:
                values, uploads = await read_params(request)
            except ApiError as error:
                return self._finish(call, error.status, error.body())
            call.params = recorded_params(values, uploads)
            canonical = self._canonical(name)
            if canonical is None:
                return self._finish(call, 404, errors.METHOD_NOT_FOUND)
            call.method = canonical
            retry_after = self._take_flood(canonical)
            if retry_after is not None:
                flood = errors.too_many_requests(retry_after)
                return self._finish(call, flood.status, flood.body())
            status, body = await self._execute(bot, canonical, Params(values, uploads), call)
            return self._finish(call, status, body)
        except OutageError:
            return self._outage(request, call)

    async def _execute(
        self, bot: BotState, method: str, params: Params, call: ApiCall
    ) -> tuple[int, dict[str, Any]]:
        handler = HANDLERS.get(method)
        if handler is None:
            self.unimplemented_calls.append(call)
            missing = bad_request(f"TelegramDouble does not implement {method}")
            return missing.status, missing.body()
        try:
            result = await handler(Context(self._world, bot, params, self))
        except ApiError as error:
            return error.status, error.body()
        except OutageError:
            raise
        except Exception:
            self.internal_errors.append(traceback.format_exc())
            log.exception("TelegramDouble failed on %s", method)
            return 500, {
                "ok": False,
                "error_code": 500,
                "description": f"Internal Server Error: TelegramDouble failed on {method}",
            }
        if isinstance(result, Answer):
            body = {"ok": True, "result": result.result}
            if result.description:
                body["description"] = result.description
            return 200, body
        return 200, {"ok": True, "result": result}

    def _finish(self, call: ApiCall, status: int, body: dict[str, Any]) -> web.Response:
        call.status = status
        call.response = body
        self._notify()
        return json_response(status, body)

    def _outage(self, request: web.Request, call: ApiCall | None) -> web.Response:
        self._notify()
        if self._down_mode == "reset":
            if request.transport is not None:
                request.transport.abort()
            # Nothing reaches the client: the transport is gone.
            return web.Response(status=500)
        if self._down_mode == "server_error":
            body = {"ok": False, "error_code": 500, "description": "Internal Server Error"}
            if call is None:
                return json_response(500, body)
            return self._finish(call, 500, body)
        if call is not None:
            call.status = 502
        return web.Response(
            status=502,
            text=errors.BAD_GATEWAY_HTML,
            content_type="text/html",
            headers={"Server": "nginx/1.18.0"},
        )

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        if self.is_down:
            return self._outage(request, None)
        match = _FILE_PATH_RE.match(request.path)
        bot = self._world.bots.get(match.group(1)) if match else None
        stored = self._world.files_by_path.get(match.group(2)) if match else None
        if bot is None or stored is None or stored.bot_id != bot.identity.id:
            return json_response(404, errors.NOT_FOUND)
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def fetch(self, url: str) -> bytes:
        """Download a file a method was given by URL (loopback hosts only: the double is offline).

        Raises:
            ApiError: ``failed to get HTTP URL content``.
        """
        if urlsplit(url).hostname not in LOOPBACK_HOSTS or self._http is None:
            raise bad_request("failed to get HTTP URL content")
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
                if response.status != 200:
                    raise bad_request("failed to get HTTP URL content")
                return await response.read()
        except (aiohttp.ClientError, TimeoutError):
            raise bad_request("failed to get HTTP URL content") from None

    def _take_flood(self, method: str) -> int | None:
        for rule in self._floods:
            if rule.remaining <= 0:
                continue
            if rule.methods is None and method == "getUpdates":
                continue
            if rule.methods is not None and method not in rule.methods:
                continue
            rule.remaining -= 1
            return rule.retry_after
        return None


def json_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        content_type="application/json",
    )


async def read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, Upload]]:
    """Read parameters from the query string and a JSON, urlencoded or multipart body."""
    raw: dict[str, Any] = dict(request.query)
    uploads: dict[str, Upload] = {}
    if request.can_read_body:
        content_type = request.content_type
        if content_type == "application/json":
            try:
                body = json.loads(await request.text())
            except ValueError:
                raise bad_request("can't parse JSON encoded request body") from None
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON encoded request body")
            raw.update(body)
        elif content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                raise ApiError(413, "Request Entity Too Large") from None
            except ValueError:
                raise bad_request("can't parse multipart/form-data request") from None
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    upload = Upload(value.filename, value.content_type, value.file.read())
                    uploads[name] = upload
                    raw[name] = upload
                else:
                    raw[name] = value
    return normalize_params(raw), uploads


def recorded_params(values: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
    """Return parameters for the call log, ``attach://<part>`` replaced by the upload."""
    attached = {
        value.removeprefix("attach://")
        for value in values.values()
        if isinstance(value, str) and value.startswith("attach://")
    }
    return {
        name: uploads.get(value.removeprefix("attach://"), value)
        if isinstance(value, str) and value.startswith("attach://")
        else value
        for name, value in values.items()
        if name not in attached
    }
