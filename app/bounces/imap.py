"""`tidings bounces --imap URL`: read a bounce mailbox and record what it holds.

Each poll fetches the UNSEEN messages without marking them (BODY.PEEK), records each
one through `record_bounce` in its own transaction, and only then flags it \\Seen. A crash
between the two re-reads a message next time, which the bounces' event keys make
harmless. Nothing is ever deleted: the mailbox stays the operator's record. imaplib is
blocking, so every IMAP round trip runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bounces.dsn import NotABounce, parse_bounce_email
from app.bounces.policy import record_bounce
from app.config import Settings

log = logging.getLogger(__name__)
MAX_PER_POLL = 500  # a huge backlog is worked through over several polls, never all in memory


@dataclass(frozen=True)
class Mailbox:
    """Where the bounces arrive: imaps://user:password@host:port/FOLDER (or imap:// on loopback)."""

    host: str
    port: int
    user: str
    password: str
    folder: str
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> Mailbox:
        """Parse an imap:// or imaps:// URL; ValueError when it is not one."""
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname:
            raise ValueError("expected imaps://user:password@host[:port]/FOLDER")
        tls = parts.scheme == "imaps"
        return cls(
            host=parts.hostname,
            port=parts.port or (993 if tls else 143),
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            folder=unquote(parts.path.lstrip("/")) or "INBOX",
            tls=tls,
        )


@dataclass
class PollResult:
    messages: int = 0
    bounces: int = 0
    not_bounces: int = 0


def _connect(box: Mailbox, ssl_context: ssl.SSLContext | None) -> imaplib.IMAP4:
    if box.tls:
        context = ssl_context or ssl.create_default_context()
        conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(box.host, box.port, ssl_context=context, timeout=30)
    else:
        conn = imaplib.IMAP4(box.host, box.port, timeout=30)
    conn.login(box.user, box.password)
    status, _ = conn.select(_quoted(box.folder))
    if status != "OK":
        raise imaplib.IMAP4.error(f"cannot open folder {box.folder!r}")
    return conn


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unseen(conn: imaplib.IMAP4) -> list[str]:
    status, data = conn.uid("SEARCH", "UNSEEN")
    if status != "OK" or not data or not data[0]:
        return []
    return [uid.decode() for uid in data[0].split()[:MAX_PER_POLL]]


def _fetch(conn: imaplib.IMAP4, uid: str) -> bytes | None:
    status, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
    if status != "OK":
        return None
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            return bytes(item[1])
    return None


def _mark_seen(conn: imaplib.IMAP4, uid: str) -> None:
    conn.uid("STORE", uid, "+FLAGS", "(\\Seen)")


async def _record(
    raw: bytes, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> int:
    """Record the bounces in one message; 0 when it holds none."""
    try:
        events = parse_bounce_email(raw)
    except NotABounce:
        return 0
    async with sessionmaker() as session:
        for event in events:
            await record_bounce(session=session, settings=settings, event=event, source="imap")
        await session.commit()
    return len(events)


async def poll_once(
    *,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    url: str,
    ssl_context: ssl.SSLContext | None = None,
) -> PollResult:
    """Record every unseen message of the mailbox once and flag it \\Seen."""
    box = Mailbox.from_url(url)
    result = PollResult()
    conn = await asyncio.to_thread(_connect, box, ssl_context)
    try:
        for uid in await asyncio.to_thread(_unseen, conn):
            raw = await asyncio.to_thread(_fetch, conn, uid)
            if raw is None:
                continue
            found = await _record(raw, settings, sessionmaker)
            result.messages += 1
            result.bounces += found
            result.not_bounces += found == 0
            # Flagged only after the commit: a crash before it re-reads, never loses.
            await asyncio.to_thread(_mark_seen, conn, uid)
    finally:
        await asyncio.to_thread(_logout, conn)
    return result


def _logout(conn: imaplib.IMAP4) -> None:
    try:
        conn.logout()
    except (imaplib.IMAP4.error, OSError):
        pass


async def run(settings: Settings, url: str, *, interval: float, once: bool) -> int:
    """Poll the mailbox every `interval` seconds (or once); the exit status of the command."""
    from app.db import make_engine, make_sessionmaker

    Mailbox.from_url(url)  # a bad URL fails at once, not after the first sleep
    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    try:
        while True:
            try:
                result = await poll_once(settings=settings, sessionmaker=sessionmaker, url=url)
                log.info(
                    "imap poll: %d messages, %d bounces, %d not bounces",
                    result.messages, result.bounces, result.not_bounces,
                )  # fmt: skip
            except (imaplib.IMAP4.error, OSError) as exc:
                # The mailbox being briefly unreachable must not stop a long-running poller.
                log.warning("imap poll failed: %s", exc)
                if once:
                    return 1
            if once:
                return 0
            await asyncio.sleep(interval)
    finally:
        await engine.dispose()
