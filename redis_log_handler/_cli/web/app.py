"""The page's routes: the page itself, sign-in, and the JSON the page reads (``/api/*``).

Every ``/api/*`` answer is JSON. A filter the page sent that does not parse is
a 400 naming the parameter; a Redis that fails is a 503 whose ``error`` the
page shows while it retries. The routes are plain functions: Starlette runs
them in its thread pool, each with the one synchronous client (its connection
pool is thread-safe), and a live read waits at most a second.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import redis.exceptions
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from redis_log_handler._cli.key_report import key_report
from redis_log_handler._cli.status import producers
from redis_log_handler._shared.address import redact_url
from redis_log_handler._shared.diagnostics import describe
from redis_log_handler._shared.json_codec import json_safe
from redis_log_handler._shared.shards import shard_keys
from redis_log_handler._writer.heartbeat import producers_key

from .filters import record_filter
from .guard import COOKIE, Guard
from .reading import newer, older

__all__ = ["WebSettings", "make_app"]

PAGE = Path(__file__).parent / "page"
_STATIC = {"page.js": "text/javascript", "page.css": "text/css", "sign-in.js": "text/javascript"}
_DEFAULT_ROWS = 200
_MAX_ROWS = 1000


@dataclass(frozen=True, slots=True)
class WebSettings:
    """What ``web`` serves: the key (and its shards), how it is read, and who may read it."""

    url: str
    key: str
    shards: int
    mode: str  # stream, list or pubsub, as key_mode decided
    host: str
    token: str | None


def _cursor(request: Request, name: str) -> dict[str, str]:
    text = request.query_params.get(name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"{name} must be a JSON object of positions, got {text!r}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{name} must be a JSON object of positions, got {text!r}")
    return value


def _limit(request: Request) -> int:
    text = request.query_params.get("limit", str(_DEFAULT_ROWS))
    if not text.isdigit() or not 1 <= int(text) <= _MAX_ROWS:
        raise ValueError(f"limit must be a whole number from 1 to {_MAX_ROWS}, got {text!r}")
    return int(text)


def _json(content: dict[str, Any]) -> Response:
    try:
        body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        body = json.dumps(json_safe(content), ensure_ascii=False, separators=(",", ":"))  # NaN as "NaN", as written
    return Response(body, media_type="application/json")


class _Routes:
    """The routes, over one client: a plain function answers in Starlette's thread pool."""

    def __init__(self, settings: WebSettings, client: Any) -> None:
        self._settings = settings
        self._client = client
        self._keys = shard_keys(settings.key, settings.shards)
        self.guard: Guard | None = None  # set once the guard around the routes exists (sign-in asks it)

    def answer(self, read: Callable[[Request], dict[str, Any]]) -> Callable[[Request], Response]:
        """An endpoint that answers with *read*'s JSON, a 400 for a bad parameter, a 503 when Redis fails."""

        def endpoint(request: Request) -> Response:
            try:
                return _json(read(request))
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except (redis.exceptions.RedisError, OSError) as exc:
                where = redact_url(self._settings.url)
                return JSONResponse({"error": f"Redis at {where} failed ({describe(exc)})"}, status_code=503)

        return endpoint

    def info(self, _: Request) -> dict[str, Any]:
        mode = self._settings.mode
        note = None
        if mode == "pubsub":
            note = "a channel keeps no records to show: run redis-log-handler tail --mode pubsub to watch it"
        elif mode == "list":
            note = "a list is shown without following it (consumers popping it move every position)"
        return {
            "key": self._settings.key,
            "keys": self._keys,
            "mode": mode,
            "server": redact_url(self._settings.url),
            "follow": mode == "stream",
            "note": note,
        }

    def older(self, request: Request) -> dict[str, Any]:
        wanted = record_filter(parse_qs(request.url.query))
        cursor, limit = _cursor(request, "cursor"), _limit(request)
        if self._settings.mode == "pubsub":
            return {"rows": [], "cursor": {}, "done": True, "newest": {}}
        page = older(self._client, self._settings.mode, self._keys, cursor, limit, wanted)
        return {"rows": page.rows, "cursor": page.cursor, "done": page.done, "newest": page.newest}

    def newer(self, request: Request) -> dict[str, Any]:
        wanted = record_filter(parse_qs(request.url.query))
        after = _cursor(request, "after")
        if self._settings.mode != "stream":
            return {"rows": [], "after": after}
        rows, positions = newer(self._client, self._keys, after, wanted)
        return {"rows": rows, "after": positions}

    def fleet(self, _: Request) -> dict[str, Any]:
        """What ``status`` shows; a part the user may not read is named, not fatal (the viewer ACL of the docs)."""
        fleet: dict[str, Any] = {"producers": [], "keys": []}
        try:
            raw: Any = self._client.hgetall(producers_key(self._settings.key))
            fleet["producers"] = producers(raw, time.time())
        except redis.exceptions.NoPermissionError as exc:
            fleet["producers_error"] = describe(exc)
        for key in self._keys:
            try:
                fleet["keys"].append(key_report(self._client, key) or {"key": key, "type": "none"})
            except redis.exceptions.ResponseError as exc:  # an ACL without the commands that read the key
                fleet["keys"].append({"key": key, "error": describe(exc)})
        return fleet

    def page(self, _: Request) -> Response:
        return FileResponse(PAGE / "index.html", media_type="text/html")

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(PAGE / name, media_type=_STATIC[name])

    async def sign_in(self, request: Request) -> Response:
        if request.method == "GET":
            return FileResponse(PAGE / "sign-in.html", media_type="text/html")
        try:
            given = (await request.json()).get("token")
        except (ValueError, AttributeError):
            given = None
        if not isinstance(given, str) or self.guard is None or not self.guard.token_matches(given):
            return JSONResponse({"error": "this is not the token"}, status_code=401)
        response = Response(status_code=204)
        response.set_cookie(COOKIE, given, httponly=True, samesite="strict", path="/")
        return response

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        yield
        self._client.close()


def make_app(settings: WebSettings, client: Any) -> Guard:
    """The ASGI application: the routes behind the guard, reading with *client* (closed when the server stops)."""
    routes = _Routes(settings, client)
    starlette = Starlette(
        routes=[
            Route("/", routes.page),
            Route("/sign-in", routes.sign_in, methods=["GET", "POST"]),
            Route("/static/{name}", routes.static),
            Route("/api/info", routes.answer(routes.info)),
            Route("/api/older", routes.answer(routes.older)),
            Route("/api/newer", routes.answer(routes.newer)),
            Route("/api/fleet", routes.answer(routes.fleet)),
        ],
        lifespan=routes.lifespan,
    )
    routes.guard = Guard(starlette, token=settings.token, bound_host=settings.host)
    return routes.guard
