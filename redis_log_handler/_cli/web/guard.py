"""Who may read the page, and what the browser may do with it (docs/web.md, "Security").

- **The token.** Bound to loopback, the page needs none (a token given is still
  required). Bound anywhere else, ``web`` refuses to start without one. With a
  token, every path but the sign-in page answers 401 until the request carries
  it: the sign-in page posts it once and gets a cookie (HttpOnly, SameSite=Strict,
  Path=/), or a script sends ``Authorization: Bearer <token>``. Compared in
  constant time.
- **The Host header.** On loopback, a request must name a loopback host (or
  the address served): a page of another site that resolves its own name to
  127.0.0.1 (DNS rebinding) cannot read the records through the visitor's browser.
- **The headers.** A Content-Security-Policy that allows the page's own script
  and style and nothing else (no inline script, no ``eval``, no frame, no
  resource from another origin), ``nosniff``, no referrer, no caching of data.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["COOKIE", "SIGN_IN_PATHS", "Guard", "is_loopback"]

COOKIE = "redis_log_handler_token"
SIGN_IN_PATHS = frozenset({"/sign-in", "/static/sign-in.js", "/static/page.css"})
_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
]
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether *host* (a name or an address, IPv6 with or without brackets) is this machine's loopback."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    """The host of a Host header (``name:port``, ``[::1]:port``)."""
    if value.startswith("["):
        return value[1 : value.find("]")]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware: the token, the Host check and the security headers, before any route runs."""

    def __init__(self, app: App, *, token: str | None, bound_host: str) -> None:
        self._app = app
        self._token = token.encode() if token else None
        self._loopback_only = is_loopback(bound_host)
        self._bound_host = bound_host.strip("[]").lower()

    def token_matches(self, given: str | None) -> bool:
        """Whether *given* is the token (always, without a token)."""
        if self._token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        if self._loopback_only and not self._host_allowed(headers.get("host", "")):
            await _refuse(send, 421, "this page answers only to a loopback host name")
            return
        if scope["path"] not in SIGN_IN_PATHS and not self.token_matches(_token_of(headers)):
            if scope["path"] == "/" and scope["method"] == "GET":
                await _redirect(send, "/sign-in")
            else:
                await _refuse(send, 401, "a token is needed: sign in at /sign-in")
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self._app(scope, receive, send_with_headers)

    def _host_allowed(self, host_header: str) -> bool:
        name = _host_name(host_header).lower()
        return is_loopback(name) or name == self._bound_host


def _token_of(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


async def _refuse(send: Send, status: int, reason: str) -> None:
    body = f'{{"error": "{reason}"}}'.encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    headers = [(b"location", location.encode()), (b"content-length", b"0"), *_HEADERS]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
