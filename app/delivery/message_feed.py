"""The feeder's first duty each round: transactional messages, ahead of every bulk batch.

Each round of the feeder (feeder.py) starts here: due message deliveries are claimed
(message_claims.claim, under this dispatcher's lease), checked again, rendered, signed by
the dispatcher's DKIM pool and queued for the same senders as bulk messages, before the
feeder claims or prepares the next bulk chunk. So a message posted during a large send
waits for at most the send queue's few messages (2 x concurrency), never for a batch.
Its results go through Claims and the writer like any delivery's; a worker killed with
messages claimed leaves leases that expire, and recover_expired queues them again.

A look costs one indexed query; when none was due, the next look waits POLL seconds,
so an idle dispatcher asks ten times a second and a busy one adds about as few.
A message has its own route (`smtp_route` in its request): one server is picked per route.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from app.db import utcnow
from app.delivery import message_claims
from app.delivery.items import Item
from app.delivery.message_claims import MessageTarget
from app.delivery.parts import Parts
from app.delivery.queue import Result
from app.delivery.signing import SignAgain, Signer
from app.delivery.transport import Envelope, Transport
from app.issues import compose
from app.messages.store import render
from app.models import MESSAGES_ISSUE

log = logging.getLogger("tidings.dispatcher")

BATCH = 50  # message deliveries claimed at once
POLL = 0.1  # seconds between looks when none was due: a message waits at most this


class MessageFeed:
    """Claims, renders, signs and queues due transactional messages for the senders."""

    def __init__(self, parts: Parts, *, sendq: asyncio.Queue[Item | None],
                 stopping: asyncio.Event) -> None:  # fmt: skip
        self.settings, self.sessionmaker = parts.settings, parts.sessionmaker
        self._single = parts.single  # a probe, then at most one claim: no transaction needed
        self.owner = parts.owner
        self._claims, self._servers = parts.claims, parts.servers
        self._sendq, self._stopping = sendq, stopping
        self._next_look = 0.0  # monotonic time of the next look when none is waiting
        self._claiming: asyncio.Future[list[int]] | None = None

    async def feed(self, signer: Signer | None) -> bool:
        """Send what is due (one batch); False when nothing was."""
        claims = self._claims
        if not claims.waiting(MESSAGES_ISSUE):
            if time.monotonic() < self._next_look:
                return False
            # Shielded, as the bulk claim: a stop mid-claim must still learn what it took.
            self._claiming = asyncio.ensure_future(self._claim())
            ids = await asyncio.shield(self._claiming)
            if len(ids) < BATCH:  # a full batch: there may be more, look again at once
                self._next_look = time.monotonic() + POLL
            if not ids:
                return False
        ids = claims.take_waiting(MESSAGES_ISSUE, BATCH)
        await self._prepare(ids, signer)
        return True

    async def wind_down(self) -> None:
        if self._claiming is not None:  # its rows join the held claims, released on stop
            await asyncio.gather(self._claiming, return_exceptions=True)

    async def _claim(self) -> list[int]:
        async with self._single() as s, s.begin():
            ids = await message_claims.claim(session=s, owner=self.owner, limit=BATCH,
                                             lease_seconds=self.settings.lease_seconds)  # fmt: skip
        self._claims.claimed(MESSAGES_ISSUE, ids)
        return ids

    async def _prepare(self, ids: list[int], signer: Signer | None) -> None:
        claims = self._claims
        try:
            async with self.sessionmaker() as s:
                targets = await message_claims.load(session=s, ids=ids)
        except (SQLAlchemyError, OSError):
            claims.wait_again(MESSAGES_ISSUE, ids)  # ours still, first in line next round
            raise
        found = {t.id for t in targets}
        for i in ids:
            if i not in found:
                claims.forget(i)
        ready: list[tuple[MessageTarget, str, str, bytes]] = []
        for t in targets:
            if t.refusal is not None:  # blocklisted or erased since it was accepted
                claims.emit(Result(t.id, "failed", error=t.refusal))
                continue
            try:
                ready.append(await asyncio.to_thread(self._render, t))
            except Exception as exc:  # noqa: BLE001 - a template changed or gone: this one fails
                claims.emit(Result(t.id, "failed", error=f"the template does not render: {exc}"))
        if not ready:
            return
        datas = [data for *_, data in ready]
        if signer is not None:
            try:
                datas = await signer.sign(datas)
            except SignAgain:
                for t, *_ in ready:
                    claims.release(t.id)
                return
            except Exception as exc:  # noqa: BLE001 - a key that cannot sign: a failed attempt
                log.exception("DKIM signing failed for transactional messages")
                for t, *_ in ready:
                    claims.emit(self._retry(t, f"DKIM signing failed: {exc}"))
                return
        await self._queue([(t, s, m, d) for (t, s, m, _), d in zip(ready, datas, strict=True)])

    def _render(self, t: MessageTarget) -> tuple[MessageTarget, str, str, bytes]:
        settings = self.settings
        r = compose.recipient(
            settings, issue_id=MESSAGES_ISSUE, delivery_id=t.id, subscriber_id=None,
            email=t.email, name="", attributes={},
        )  # fmt: skip
        data = render(template=t.template, subject=t.subject, data=t.data, email=t.email,
                      from_addr=settings.from_, message_id=r.message_id)  # fmt: skip
        return t, compose.envelope_sender(settings, r), r.message_id, data

    async def _queue(self, ready: list[tuple[MessageTarget, str, str, bytes]]) -> None:
        by_route: dict[tuple[str, ...] | None, Transport | None] = {}
        for t, sender, mid, data in ready:
            if t.route not in by_route:
                by_route[t.route] = self._servers.pick(t.route)
            transport = by_route[t.route]
            if transport is None:
                error = f"smtp_route {list(t.route or ())} names no configured SMTP server"
                self._claims.emit(Result(t.id, "failed", error=error))
                continue
            if not await self._servers.take(transport.name, 1, self._stopping):
                self._claims.release(t.id)  # stopping
                continue
            envelope = Envelope(sender, (t.email,), data)
            await self._sendq.put(Item(t.id, MESSAGES_ISSUE, t.attempts, transport, envelope, mid))

    def _retry(self, t: MessageTarget, error: str) -> Result:
        delays = self.settings.retry_delays
        if t.attempts > len(delays):
            return Result(t.id, "failed", error=error[:1000])
        later = utcnow() + timedelta(seconds=delays[max(0, t.attempts - 1)])
        return Result(t.id, "queued", error=error[:1000], next_attempt_at=later)
