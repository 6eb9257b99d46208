"""The workers' sender of transactional messages: claimed under leases, ahead of bulk.

It runs in every dispatcher process beside the bulk pipeline, on the same transports and
DKIM, with its own small claim (oldest first), so a message posted during a large send
waits for no bulk batch. A claim sets a lease; a worker killed mid-send leaves a lease
that expires and the message is claimed again (at-least-once, as for bulk deliveries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from email.utils import make_msgid
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import utcnow
from app.delivery.transport import DeliveryError, Envelope, Transport, pick_weighted
from app.issues import compose
from app.messages.service import refusal
from app.messages.store import messages, render

log = logging.getLogger("tidings.messages")

BATCH = 20
POLL = 0.1  # seconds between looks when idle: a message waits at most this for a worker


class MessageSender:
    """Sends every due transactional message until `stopping` is set."""

    def __init__(
        self, *, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession],
        transports: list[Transport], owner: str, stopping: asyncio.Event,
    ) -> None:  # fmt: skip
        self.settings, self.sessionmaker, self.transports = settings, sessionmaker, transports
        self.owner, self.stopping = owner, stopping

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.run(), name="tidings-messages")

    async def run(self) -> None:
        while not self.stopping.is_set():
            try:
                busy = await self.turn()
            except Exception:
                log.exception("messages: will retry")
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), POLL)

    async def _claim(self) -> list[Any]:
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        due = or_(
            and_(messages.c.status == "queued", messages.c.next_attempt_at <= now),
            and_(messages.c.status == "sending", messages.c.lease_expires_at < now),
        )
        ids = select(messages.c.id).where(due).order_by(messages.c.id).limit(BATCH)
        if not self.settings.is_sqlite:
            ids = ids.with_for_update(skip_locked=True)
        async with self.sessionmaker() as s, s.begin():
            # A read first: an idle sender must not take SQLite's write lock ten times a second.
            if await s.scalar(select(messages.c.id).where(due).limit(1)) is None:
                return []
            rows = await s.execute(
                update(messages)
                .where(messages.c.id.in_(ids.scalar_subquery()))
                .values(status="sending", lease_owner=self.owner, lease_expires_at=lease,
                        attempts=messages.c.attempts + 1)
                .returning(messages)
            )  # fmt: skip
            return list(rows)

    async def turn(self) -> bool:
        """Claim, send and record one batch; False when nothing was due."""
        claimed = await self._claim()
        if not claimed:
            return False
        await asyncio.gather(*(self._one(m) for m in claimed))
        return True

    async def _one(self, m: Any) -> None:
        values: dict[str, Any]
        try:
            async with self.sessionmaker() as s:
                why = await refusal(s, m.email)  # checked again just before it goes
            if why is not None:
                values = {"status": "failed", "last_error": why}
            else:
                values = await self._send(m)
        except Exception as exc:  # noqa: BLE001 - an unknown outcome is a temporary failure
            values = self._retry(m, f"{type(exc).__name__}: {exc}")
        async with self.sessionmaker() as s, s.begin():
            await s.execute(
                update(messages)
                .where(messages.c.id == m.id, messages.c.lease_owner == self.owner,
                       messages.c.status == "sending")
                .values(lease_owner=None, lease_expires_at=None, **values)
            )  # fmt: skip

    async def _send(self, m: Any) -> dict[str, Any]:
        settings = self.settings
        data = await asyncio.to_thread(
            render, template=m.template, subject=m.subject, data=m.data, email=m.email,
            from_addr=settings.from_,
        )  # fmt: skip
        signed = await compose.dkim_sign(settings, data)
        sender = compose._address_of(settings.from_)
        transport = pick_weighted(self.transports)
        try:
            await transport.send(Envelope(sender, (m.email,), signed))
        except DeliveryError as exc:
            if exc.permanent:
                return {"status": "failed", "last_error": str(exc)[:1000]}
            return self._retry(m, str(exc))
        mid = _message_id(signed) or make_msgid(domain=settings.sender_domain)
        return {"status": "sent", "sent_at": utcnow(), "last_error": None, "message_id": mid}

    def _retry(self, m: Any, error: str) -> dict[str, Any]:
        delays = self.settings.retry_delays
        if m.attempts > len(delays):
            return {"status": "failed", "last_error": error[:1000]}
        later = utcnow() + timedelta(seconds=delays[m.attempts - 1])
        return {"status": "queued", "next_attempt_at": later, "last_error": error[:1000]}


def _message_id(data: bytes) -> str | None:
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    for line in head.splitlines():
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")[:300]
    return None
