"""How `tidings serve` runs uvicorn: a header deadline, and an access log without tokens.

uvicorn bounds only the idle time between requests (`timeout_keep_alive`); a client that
connects and sends its headers a byte at a time is held for ever, so 300 of them hold
300 sockets. `HeaderDeadlineProtocol` closes a connection whose request line and headers
are not complete `header_timeout` seconds after it opened, or after its previous
response. Bodies are bounded by BodyTimeoutMiddleware (app/middleware.py).

Links in our emails are bearer capabilities (`/u/<token>`, `/subscribe/confirm/<token>`,
the console's invitations and resets): the access log must not make a copy of each.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import Settings
from app.web.redaction import redact


class AccessLogRedaction(logging.Filter):
    """Rewrites uvicorn's access lines (`client - "METHOD path HTTP/x" status`) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def install_access_log_redaction() -> None:
    """Add the filter to uvicorn's access logger once (called at each app start)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogRedaction) for f in logger.filters):
        logger.addFilter(AccessLogRedaction())


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's line and headers."""

    # None: read from Settings once per process (each `--workers` process builds its own).
    header_timeout: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        cls = type(self)
        if cls.header_timeout is None:
            cls.header_timeout = Settings().header_timeout
        self._deadline = self.loop.call_later(cls.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()  # type: ignore[union-attr]
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What every `uvicorn.run` of ours passes: log level, no proxy headers, the deadlines."""
    HeaderDeadlineProtocol.header_timeout = settings.header_timeout
    return {
        "log_level": settings.log_level.lower(),
        "proxy_headers": False,  # X-Forwarded-* is judged by our own trusted-proxy rule
        "http": HeaderDeadlineProtocol,
        "timeout_keep_alive": 5,
    }
