"""What every request passes before a route sees it, and how long a client may take to send one.

``Guard`` is plain ASGI middleware, in this order: the ``Host`` header against the allowed
hosts (a page elsewhere cannot reach a local server by DNS rebinding), the API key
(compared in constant time, before a byte of the body is read), then the body itself,
counted as it arrives whatever its transfer encoding (``Content-Length`` or chunked) and
cut off with 413 at the limit or 408 when it does not come in time. Only then is the
route called, with the body it read replayed. Every answer gets the security headers.

``server_config`` gives uvicorn a protocol that also closes connections whose request
headers do not arrive in time: uvicorn's own ``timeout_keep_alive`` only covers idle
connections between requests, so a client that sends half a header otherwise holds its
connection (and a file descriptor) forever; and it answers the requests h11 itself refuses
(a bad ``Content-Length``, a bad chunk size) in the same JSON shape, with the same headers, as
every other error, where uvicorn would answer them in plain text.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from http import HTTPStatus

from .protocol import ServerLimits, error_body

# Reachable without the key: the health check, and the page, its files and the API docs, which hold no data.
OPEN_PATHS = {"/", "/favicon.ico", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1"]

# The page loads only its own script and style sheet and talks only to this server.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# FastAPI's /docs and /redoc pages load Swagger UI and ReDoc from a CDN with inline start-up scripts.
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
            "https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; frame-ancestors 'none'")


def default_allowed_hosts(host: str) -> list[str] | None:
    """Bound to loopback: only loopback names (None: any Host, for a server bound elsewhere)."""
    return LOOPBACK_HOSTS if host in ("127.0.0.1", "localhost", "::1") else None


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    csp = DOCS_CSP if path in ("/docs", "/redoc") else PAGE_CSP
    return [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
            (b"content-security-policy", csp.encode()), (b"referrer-policy", b"no-referrer")]


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


class Guard:
    """ASGI middleware: allowed host, API key, bounded and timed body; security headers on every answer."""

    def __init__(self, app, limits: ServerLimits, api_key: str | None = None,
                 allowed_hosts: list[str] | None = None):
        self.app, self.limits = app, limits
        self.api_key = api_key.encode() if api_key is not None else None
        self.allowed_hosts = None if allowed_hosts is None or "*" in allowed_hosts else \
            [h.lower() for h in allowed_hosts]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = _with_headers(send, security_headers(scope["path"]))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            self._check_host(headers)
            self._check_key(scope, headers)
            body = await self._read_body(headers, receive)
        except Refused as r:
            return await _answer(send, r.status, str(r), r.headers)
        if body is None:
            return  # the client left before sending its body
        await self.app(scope, _replay(body, receive), send)

    def _check_host(self, headers: dict) -> None:
        if self.allowed_hosts is None:
            return
        host = _host_name(headers.get("host", ""))
        if not any(host == h or h.startswith("*.") and host.endswith(h[1:]) for h in self.allowed_hosts):
            raise Refused(400, f"Host header {host!r} is not allowed here; serve with --allowed-hosts to add it")

    def _check_key(self, scope, headers: dict) -> None:
        if self.api_key is None or _is_open(scope["method"], scope["path"]):
            return
        header = headers.get("authorization", "")
        token = header[7:].encode("latin-1") if header[:7].lower() == "bearer " else b""
        if not secrets.compare_digest(token, self.api_key):
            raise Refused(401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                          {"WWW-Authenticate": "Bearer"})

    async def _read_body(self, headers: dict, receive) -> bytes | None:
        """The whole body, counted as it comes: 413 past the limit, 408 past the read timeout."""
        limit = self.limits.max_body_bytes
        too_big = Refused(413, f"request body: at most {limit} bytes", {"Connection": "close"})
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise too_big  # refused before a byte is read
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.read_timeout_s
        chunks, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise Refused(408, f"request body: not received within {self.limits.read_timeout_s:g} s",
                              {"Connection": "close"}) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _is_open(method: str, path: str) -> bool:
    return path == "/health" or method in ("GET", "HEAD") and (path in OPEN_PATHS or path.startswith("/static/"))


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _with_headers(send, extra: list[tuple[bytes, bytes]]):
    async def sending(message):
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            message = {**message, "headers": [*message.get("headers", []),
                                              *((k, v) for k, v in extra if k not in present)]}
        await send(message)
    return sending


def _replay(body: bytes, receive):
    """The body, once, as one message; after that the server's own messages (a disconnect)."""
    sent = False

    async def replaying():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replaying


async def _answer(send, status: int, message: str, headers: dict) -> None:
    body = json.dumps(error_body(message, status)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           *((k.lower().encode(), v.encode()) for k, v in headers.items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------- uvicorn


def server_config(app, host: str, port: int, limits: ServerLimits, **settings):
    """uvicorn's Config with the header deadline below, for ``serve`` and the tests alike."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, http=_header_deadline_protocol(limits.read_timeout_s),
                          log_level=settings.pop("log_level", "warning"), **settings)


def _header_deadline_protocol(timeout_s: float):
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        """h11's protocol, closing a connection whose request head is not complete ``timeout_s`` after it began,
        and answering what h11 itself refuses in the project's shape.

        The deadline starts when the connection opens, or when the first byte of a later
        request on it arrives, and is not moved by more bytes: a client sending one byte
        a second gains nothing. A request h11 cannot parse (``Content-Length: -5``, two
        lengths, a chunk size ``zz``, a head over its size limit) never reaches the app, so
        uvicorn would answer it in plain text; here it gets the JSON error and the headers.
        """

        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._awaiting_head():
                self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            # uvicorn calls this inside its ``except h11.RemoteProtocolError``, so the error is at hand.
            error = sys.exc_info()[1]
            status = getattr(error, "error_status_hint", 400)
            self._refuse(status, f"malformed HTTP request: {str(error or msg)[:200]}")

        def _awaiting_head(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self._awaiting_head():
                self._refuse(408, f"request headers: not received within {timeout_s:g} s")

        def _refuse(self, status: int, message: str) -> None:
            """Answer ``status`` and close; just close when an answer has already begun (one answer per request)."""
            if self.transport.is_closing():
                return
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(raw_error(status, message))
            self.transport.close()

    return HeaderDeadline


def raw_error(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 error answer, for errors that come before (or without) the app: shape and headers kept."""
    body = json.dumps(error_body(message, status)).encode()
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: close",
            *(f"{k.decode()}: {v.decode()}" for k, v in security_headers(""))]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
