"""The dispatcher's feeder: claim, re-check, render, sign, and queue for the senders.

One feeder coroutine per dispatcher, round-robin over the issues being sent:

    due transactional messages first, every round (message_feed.py), then
    claim a batch (one UPDATE … RETURNING under a lease)
      └─ per chunk of CHUNK: rate tokens, re-check who may still be sent to (one query),
         render each message, DKIM-sign the chunk, then queue each message for a sender.

The re-check happens per chunk, just before its messages are rendered, so an address
unsubscribed or blocklisted after the send started is skipped (contract: "checked again
just before each message goes"); a chunk is at most a few hundred milliseconds of sending.
Signing runs beside the feeder (signing.py), several chunks at once, so the senders never
wait for one chunk's signatures while the cores have work to give.

Why one feeder and not one per issue or per sender: claims, re-checks and rendering are
all database- or CPU-bound work on the one event loop, so a second feeder would only
interleave with the first; one coroutine keeps the round-robin fair between issues and
bounds what is prepared ahead to the send queue's size (2 x concurrency messages) plus
MAX_IN_FLIGHT chunks being signed, whatever the size of the send: memory stays flat.

What it owns: each issue's compilation and SMTP route (read once per dispatcher, dropped
when the issue is sent or cancelled: a server is picked only among the route's), its
round-robin turn, the claim in progress and the signing tasks. It reads the board, asks
`Servers` for a server and its tokens, and hands claims and results to `Claims`; it
changes nothing of theirs but through their methods.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app import branding
from app.config import Settings
from app.db import on_postgresql
from app.delivery import message_feed, queue, ratelimit, signing
from app.delivery.items import Item
from app.delivery.message_feed import MessageFeed
from app.delivery.parts import Parts
from app.delivery.queue import Result, Target
from app.delivery.signing import SignAgain, Signer
from app.delivery.transport import Envelope, Transport
from app.engagement import links as engagement_links
from app.issues import compose, stored_layouts
from app.models import Issue

log = logging.getLogger("tidings.dispatcher")

CHUNK = 50  # deliveries re-checked (unsubscribed? blocklisted?) in one query, just before sending


class Feeder:
    """Claims, re-checks, renders and signs messages into the send queue, until stopped."""

    def __init__(
        self, parts: Parts, *, sendq: asyncio.Queue[Item | None], stopping: asyncio.Event
    ) -> None:
        self.settings, self.sessionmaker = parts.settings, parts.sessionmaker
        self._single = parts.single
        self.owner = parts.owner
        self._board, self._claims, self._servers = parts.board, parts.claims, parts.servers
        self._sendq, self._stopping = sendq, stopping
        self._wake = asyncio.Event()  # a send started: an idle feeder looks at once
        self._compiled: dict[int, asyncio.Future[Any]] = {}  # issue id -> its compilation
        self._signer: Signer | None = None
        self._signing: set[asyncio.Task[None]] = set()  # chunks being DKIM-signed
        self._sign_slots = asyncio.Semaphore(signing.MAX_IN_FLIGHT)
        self._turn = 0  # the round-robin over sending issues
        self._claiming: asyncio.Future[list[int]] | None = None  # the claim in flight
        self._claiming_for = 0  # its issue
        # The next claim is made ahead (feed_once) on PostgreSQL only: on SQLite, whose loop
        # is the bound, it measured slower (six paired runs: 0.502 -> 0.438 x smtp-source).
        self._claim_ahead = on_postgresql(parts.sessionmaker)
        self._routes: dict[int, tuple[str, ...] | None] = {}  # issue id -> its smtp_route
        self._messages = MessageFeed(parts, sendq=sendq, stopping=stopping)

    # -- what the control loop tells us -------------------------------------------------

    def started(self, issue_id: int) -> None:
        """An issue began sending: compile it while the first batch is claimed, and look now."""
        self.precompile(issue_id)
        self._wake.set()

    def done_with(self, issue_id: int) -> None:
        """An issue is sent or cancelled: its compilation and route are no longer needed."""
        self._compiled.pop(issue_id, None)
        self._routes.pop(issue_id, None)

    # -- the loop -----------------------------------------------------------------------

    async def run(self, signer: Signer | None) -> None:
        """Feed the senders until stopping; an error is logged and retried."""
        self._signer = signer
        idle = 0
        while not self._stopping.is_set():
            try:
                busy = await self.feed_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("feeder: will retry")
                await ratelimit._sleep(1.0, self._stopping)
                continue
            idle = 0 if busy else idle + 1
            if idle > max(1, len(self._board.sending())):
                self._wake.clear()
                # The control tick wakes us for a send; messages are looked for each POLL.
                await ratelimit._sleep(message_feed.POLL, self._wake)
                idle = 0

    async def wind_down(self) -> None:
        """After run() was cancelled: end the signing tasks, and let a claim in flight land."""
        for task in self._signing:  # what they held is released by the dispatcher
            task.cancel()
        await asyncio.gather(*self._signing, return_exceptions=True)
        await self._messages.wind_down()
        if self._claiming is not None:  # a claim we left: its rows join the held claims
            await asyncio.gather(self._claiming, return_exceptions=True)

    async def feed_once(self) -> bool:
        # Transactional messages first: claimed and queued ahead of the next bulk chunk.
        sent_messages = await self._messages.feed(self._signer)
        issues = self._board.sending()
        if not issues:
            return sent_messages
        issue_id = issues[self._turn % len(issues)]
        self._turn += 1
        if not self._claims.waiting(issue_id) and not await self._claimed(issue_id):
            return sent_messages
        transport = self._servers.pick(self._routes.get(issue_id))
        if transport is None:  # its route names no server any more: never another brand's
            route = list(self._routes.get(issue_id) or ())
            self._claims.pause(issue_id, f"smtp_route {route} names no configured SMTP server")
            return True
        want = min(CHUNK, self._claims.waiting(issue_id))
        granted = await self._servers.take(transport.name, want, self._stopping)
        if not granted or self._board.status(issue_id) != "sending":
            return True
        ids = self._claims.take_waiting(issue_id, granted)
        if self._claim_ahead and self._claiming is None and self._claims.waiting(issue_id) < CHUNK:
            # The batch's last chunk: the next claim's round trips (17 ms under load, ~19 ms
            # of sending in the queue) go on while it renders, not after, as the queue empties.
            self._claiming = asyncio.ensure_future(self._claim(issue_id))
            self._claiming_for = issue_id
        await self.prepare(issue_id, ids, transport)
        return True

    async def _claimed(self, issue_id: int) -> bool:
        """Whether deliveries of `issue_id` wait to be prepared, after the claim in flight
        (made ahead, for this issue or another) or, if that leaves none, one made now."""
        if self._claiming is None:
            self._claiming = asyncio.ensure_future(self._claim(issue_id))
            self._claiming_for = issue_id
        claim, ahead_for = self._claiming, self._claiming_for
        try:
            # Shielded: a stop that cancels the feeder mid-claim must still learn what the
            # claim took (it may have committed), so that it is released, not left to expire.
            await asyncio.shield(claim)  # its failure (the database away): the feeder retries
        finally:
            if claim.done():
                self._claiming = None
        if self._claims.waiting(issue_id) or ahead_for == issue_id:  # none: nothing is due
            return bool(self._claims.waiting(issue_id))
        return await self._claimed(issue_id)  # the one in flight was another issue's

    async def _claim(self, issue_id: int) -> list[int]:
        async with self.sessionmaker() as s, s.begin():
            if issue_id not in self._routes:  # read once per send, with its first claim
                route = await s.scalar(select(Issue.smtp_route).where(Issue.id == issue_id))
                self._routes[issue_id] = tuple(route) if route else None
            ids = await queue.claim(session=s, issue_id=issue_id, owner=self.owner,
                                    limit=self._servers.claim_size(self.settings.batch_size),
                                    lease_seconds=self.settings.lease_seconds,
                                    fanout_batch=self.settings.fanout_batch)  # fmt: skip
        self._claims.claimed(issue_id, ids)
        return ids

    # -- compiling ----------------------------------------------------------------------

    def precompile(self, issue_id: int) -> None:
        """Start compiling an issue (once per dispatcher); `_compiled_issue` awaits it."""
        if issue_id not in self._compiled:
            self._compiled[issue_id] = asyncio.ensure_future(self._compile(issue_id))

    async def _compile(self, issue_id: int) -> Any:
        async with self.sessionmaker() as s:
            # A `tidings worker` serves no page, so no request refreshes what the console
            # set: the branding and the stored layouts are read here, before each send
            # compiles (once per issue), and on the control loop's slow period.
            await refresh_branding(s, self.settings, force=True)
            issue = await s.scalar(
                select(Issue).where(Issue.id == issue_id).options(selectinload(Issue.lists))
            )
        assert issue is not None
        compiled = await asyncio.to_thread(compose.compile_for_send, self.settings, issue)
        if compiled.tracking is not None:
            # The redirect reads its targets from this table: it is written before any message.
            async with self.sessionmaker() as s, s.begin():
                await engagement_links.store(s, issue_id, compiled.tracking.links())
        return compiled

    async def _compiled_issue(self, issue_id: int) -> Any:
        self.precompile(issue_id)
        try:
            return await self._compiled[issue_id]
        except Exception:
            self._compiled.pop(issue_id, None)  # the next chunk tries again (after a resume)
            raise

    # -- one chunk ----------------------------------------------------------------------

    async def prepare(self, issue_id: int, ids: list[int], transport: Transport) -> None:
        """Re-check, render and (through signing) queue one chunk of claimed deliveries."""
        claims = self._claims
        try:
            compiled = await self._compiled_issue(issue_id)
            async with self._single() as s:
                targets = await queue.load_targets(session=s, ids=ids)
        except (SQLAlchemyError, OSError):
            # The database is away: these stay ours and wait at the head of the line (a
            # claimed delivery that is in no line and no queue would never be sent).
            if self._board.status(issue_id) == "sending":
                claims.wait_again(issue_id, ids)
            else:
                for i in ids:
                    claims.release(i)
            raise
        except Exception as exc:  # a body that cannot render: stop the issue, never crash
            log.exception("issue %s cannot be rendered", issue_id)
            claims.pause(issue_id, f"rendering failed: {exc}")
            for i in ids:
                claims.release(i)
            return
        found = {t.id for t in targets}
        for i in ids:
            if i not in found:  # the delivery row is gone (issue deleted): nothing to send
                claims.forget(i)
        items: list[tuple[Target, str, str]] = []
        datas: list[bytes] = []
        settings, from_addr = self.settings, compiled.content.from_addr
        for t in targets:
            if not t.eligible:
                claims.emit(Result(t.id, "skipped", refund=1, error="unsubscribed or blocklisted"))
                continue
            r = compose.recipient(settings, issue_id=issue_id, delivery_id=t.id,
                                  subscriber_id=t.subscriber_id, email=t.email, name=t.name,
                                  attributes=t.attributes)  # fmt: skip
            datas.append(compiled.render_message(r))
            sender = compose.envelope_sender(settings, r, from_addr=from_addr)
            items.append((t, sender, r.message_id))
        if self._signer is None or not items:
            await self._queue(issue_id, transport, items, datas)
            return
        # The chunk is signed in a task of its own while the feeder renders the next one;
        # the feeder waits only when MAX_IN_FLIGHT chunks are between it and the send queue.
        await self._sign_slots.acquire()
        task = asyncio.create_task(self._sign_then_queue(issue_id, transport, items, datas))
        self._signing.add(task)
        task.add_done_callback(self._signing.discard)

    async def _sign_then_queue(
        self, issue_id: int, transport: Transport, items: list[Any], datas: list[bytes]
    ) -> None:
        assert self._signer is not None
        try:
            signed = await self._signer.sign(datas, crlf=True)  # the renderer's
            await self._queue(issue_id, transport, items, signed)
        except SignAgain:  # a signing process died and the pool was restarted
            log.warning(
                "the DKIM signing pool broke and was restarted; %d back in the queue", len(items)
            )
            for t, _, _ in items:
                self._claims.release(t.id)
        except Exception as exc:  # a key that cannot sign: stop the issue rather than loop on it
            log.exception("DKIM signing failed for issue %s", issue_id)
            self._claims.pause(issue_id, f"DKIM signing failed: {exc}")
            for t, _, _ in items:
                self._claims.release(t.id)
        finally:
            self._sign_slots.release()

    async def _queue(
        self, issue_id: int, transport: Transport, items: list[Any], datas: list[bytes]
    ) -> None:
        put = self._sendq.put
        for (t, sender, mid), data in zip(items, datas, strict=True):
            # crlf: the renderer and the signer write CRLF only, so SMTP need not check again.
            envelope = Envelope(sender, (t.email,), data, crlf=True)
            await put(Item(t.id, issue_id, t.attempts, transport, envelope, mid))


async def refresh_branding(session: AsyncSession, settings: Settings, force: bool = False) -> None:
    """Reload the console-set branding and stored layouts (forced: now; else when stale)."""
    if force:
        await branding.load(session=session, settings=settings)
    else:
        await branding.refresh(session=session, settings=settings)
    await stored_layouts.refresh(session=session, key=settings.database_url, force=force)
