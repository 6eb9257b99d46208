"""The Transport port: where finished messages go. SMTP, an outbox folder, or memory.

Everything that sends mail (confirmations, test sends, the dispatcher) hands an
`Envelope` to a transport and gets the server's reply back, or a `DeliveryError` that
says whether trying again later can help.

Each transport has a `route` name, what an issue's or a message's `smtp_route` names:
`name=` in its TIDINGS_SMTP_URL entry, else the host (`outbox`, `memory` for those). Two
entries may share a name: a route then spreads over both, by rate as always.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.delivery.routes import route_of, smtp_entries
from app.delivery.servers import SMTPServer
from app.delivery.smtp import (
    Next,
    RecipientsRefused,
    SMTPConnection,
    SMTPReplyError,
    dot_stuffed,
)


@dataclass(frozen=True)
class Envelope:
    sender: str  # the envelope sender, MAIL FROM (Return-Path); VERP when configured
    recipients: tuple[str, ...]
    data: bytes  # the whole message, CRLF line endings
    # True when the producer vouches there is no bare CR or LF in `data`, so SMTP skips
    # its check (three scans of every message); only the dispatcher's renderer does.
    crlf: bool = False


class DeliveryError(Exception):
    """A message was not accepted. `permanent` is True for a 5xx reply only."""

    def __init__(self, message: str, *, code: int | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent


# Where a run of sends tells each message's outcome: the reply text, or why not.
Report = Callable[["Envelope", "str | DeliveryError"], None]


class Transport(ABC):
    """One place messages can go, with its own rate (messages per second, 0 = unlimited)."""

    name: str = "transport"  # unique per server: the rate-limit key and deliveries.smtp_server
    route: str = "transport"  # what smtp_route names (shared names allowed)
    rate: float = 0.0
    max_connections: int = 1

    @abstractmethod
    async def send(self, envelope: Envelope) -> str:
        """Hand over one message; return the server's reply text or raise DeliveryError."""

    async def send_run(
        self, envelope: Envelope, more: Callable[[], Envelope | None], report: Report
    ) -> None:
        """Send `envelope`, then each one `more()` gives while this transport wants more;
        each outcome (the reply text, or the DeliveryError) goes to `report` as it is known.

        An exception other than DeliveryError leaves the message being sent unreported:
        its outcome is unknown. Here: one message, and `more` is never asked.
        """
        try:
            outcome: str | DeliveryError = await self.send(envelope)
        except DeliveryError as exc:
            outcome = exc
        report(envelope, outcome)

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections and files."""


class MemoryTransport(Transport):
    """Keeps every message in a list: for tests and previews."""

    name = "memory"
    route = "memory"

    def __init__(self, route: str = "memory") -> None:
        self.sent: list[Envelope] = []
        self.route = route

    async def send(self, envelope: Envelope) -> str:
        self.sent.append(envelope)
        return "250 accepted in memory"


class OutboxTransport(Transport):
    """Writes one .eml per message into a folder: the default when no SMTP server is set."""

    name = "outbox"
    route = "outbox"

    def __init__(self, folder: Path, route: str = "outbox") -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name = f"outbox://{folder}"
        self.route = route

    def _write(self, envelope: Envelope) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        final = self.folder / f"{stamp}-{uuid.uuid4().hex}.eml"
        tmp = final.with_suffix(".tmp")
        # The envelope goes in as a mail store would show it; then the message as sent.
        head = f"Return-Path: <{envelope.sender}>\r\n"
        head += "".join(f"Delivered-To: {r}\r\n" for r in envelope.recipients)
        with open(tmp, "wb") as f:
            f.write(head.encode() + envelope.data)
        # Rename is atomic: a reader never sees half a message.
        os.replace(tmp, final)
        return f"250 written to {final.name}"

    async def send(self, envelope: Envelope) -> str:
        return await asyncio.to_thread(self._write, envelope)


class SMTPTransport(Transport):
    """A pool of reused connections to one SMTP server, through our own client (smtp.py).

    A connection is reused message after message; a refused transaction is RSET and the
    connection kept, while any error that leaves its state in doubt (a drop, a timeout,
    a 421) closes it, so the next message starts on a fresh one. The pool never holds
    more than `max_connections`.
    """

    def __init__(self, server: SMTPServer) -> None:
        self.server = server
        self.name = f"smtp://{server.host}:{server.port}"
        self.route = server.name or server.host
        self.rate = server.rate
        self.max_connections = server.max_connections
        self._idle: list[SMTPConnection] = []
        self._slots = asyncio.Semaphore(server.max_connections)

    async def _connection(self) -> SMTPConnection:
        while self._idle:
            conn = self._idle.pop()
            if conn.is_connected:
                return conn
            conn.abort()
        try:
            return await SMTPConnection.open(self.server)
        except SMTPReplyError as exc:
            # A refused greeting, STARTTLS or login is about the server or our settings,
            # never the recipient: temporary, so the failure streak pauses the issue.
            raise DeliveryError(f"{exc.reply} ({exc.command})", code=exc.reply.code) from exc
        except (TimeoutError, OSError) as exc:  # refused, unreachable or silent: nothing sent
            raise DeliveryError(f"{type(exc).__name__}: {exc}", code=None) from exc

    async def send(self, envelope: Envelope) -> str:
        outcome: list[str | DeliveryError] = []
        await self.send_run(envelope, lambda: None, lambda _, o: outcome.append(o))
        if isinstance(outcome[0], DeliveryError):
            raise outcome[0]
        return outcome[0]

    async def send_run(
        self, envelope: Envelope, more: Callable[[], Envelope | None], report: Report
    ) -> None:
        """One connection for a run of messages, each envelope written behind the last
        content (smtp.py): one round trip a message. The run ends when `more()` has none."""
        current: Envelope | None = envelope
        payload = dot_stuffed(envelope.data, crlf=envelope.crlf)
        nxt: tuple[Envelope, bytes] | None = None

        def follow() -> Next | None:
            nonlocal nxt
            following = more()
            if following is None:
                return None
            nxt = (following, dot_stuffed(following.data, crlf=following.crlf))
            return Next(following.sender, following.recipients, nxt[1])

        async with self._slots:
            conn: SMTPConnection | None = None
            try:
                while current is not None:
                    nxt = None
                    try:
                        if conn is None or not conn.is_connected:
                            if conn is not None:
                                conn.abort()
                            conn = await self._connection()
                        outcome: str | DeliveryError = await self._transaction(
                            conn, current, payload, follow
                        )
                    except DeliveryError as exc:
                        outcome = exc
                    report(current, outcome)
                    current, payload = nxt if nxt is not None else (None, b"")
            finally:
                if conn is not None and conn.is_connected:
                    self._idle.append(conn)

    @staticmethod
    async def _transaction(
        conn: SMTPConnection, envelope: Envelope, payload: bytes, follow: Callable[[], Next | None]
    ) -> str:
        try:
            final, refused = await conn.send(envelope.sender, envelope.recipients, payload, follow)
        except RecipientsRefused as exc:
            reply = exc.refused[0][1]
            raise DeliveryError(str(reply), code=reply.code, permanent=reply.code >= 500) from exc
        except SMTPReplyError as exc:
            code = exc.reply.code
            raise DeliveryError(str(exc.reply), code=code, permanent=code >= 500) from exc
        except ValueError as exc:  # an address no server can take: retrying cannot help
            raise DeliveryError(str(exc), permanent=True) from exc
        except (TimeoutError, OSError) as exc:
            # Dropped, refused or stalled connection: nothing was accepted.
            raise DeliveryError(f"{type(exc).__name__}: {exc}", code=None) from exc
        if refused:  # some recipients took it; report the first refusal, as before
            reply = refused[0][1]
            raise DeliveryError(str(reply), code=reply.code, permanent=reply.code >= 500)
        return str(final)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.quit(), 2)


def build_transports(smtp_url: str | None, var_dir: Path) -> list[Transport]:
    """The transports named by TIDINGS_SMTP_URL: SMTP servers, an outbox, or the default outbox."""
    if not smtp_url:
        return [OutboxTransport(var_dir / "outbox")]
    transports: list[Transport] = []
    for url in smtp_entries(smtp_url):
        if url.startswith("outbox://"):
            folder = Path(unquote(urlsplit(url).path) or var_dir / "outbox")
            transports.append(OutboxTransport(folder, route_of(url, "outbox")))
        elif url.startswith("memory://"):
            transports.append(MemoryTransport(route_of(url, "memory")))
        else:
            transports.append(SMTPTransport(SMTPServer.from_url(url)))
    if not transports:
        raise ValueError("TIDINGS_SMTP_URL names no transport")
    return transports


def routed(transports: list[Transport], route: tuple[str, ...] | None) -> list[Transport]:
    """The transports a route names (None: all of them)."""
    if route is None:
        return transports
    return [t for t in transports if t.route in route]


def pick_weighted(transports: list[Transport], exclude: set[str] | None = None) -> Transport:
    """Choose a transport with probability proportional to its rate (unlimited counts as 1)."""
    pool = [t for t in transports if not exclude or t.name not in exclude] or transports
    if len(pool) == 1:  # the usual one server: no draw (a confirmation per sign-up asks)
        return pool[0]
    weights = [t.rate if t.rate > 0 else 1.0 for t in pool]
    return random.choices(pool, weights=weights)[0]


class Mailer:
    """Sends one-off messages (confirmations, test sends) through the configured transports."""

    def __init__(self, transports: list[Transport]) -> None:
        self.transports = transports

    async def send(self, envelope: Envelope) -> str:
        """Try the transports by weight; a temporary failure moves on to the next one."""
        tried: set[str] = set()
        last: DeliveryError | None = None
        while len(tried) < len(self.transports):
            transport = pick_weighted(self.transports, tried)
            tried.add(transport.name)
            try:
                return await transport.send(envelope)
            except DeliveryError as exc:
                if exc.permanent:
                    raise
                last = exc
        assert last is not None
        raise last

    async def close(self) -> None:
        for t in self.transports:
            await t.close()
