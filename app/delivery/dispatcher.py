"""The dispatcher: claims deliveries, renders, signs, sends, and records every result.

One asyncio pipeline per process, with no per-message database round trip:

    feeder (feeder.py) ──(due transactional messages first (message_feed.py); then
                          claim a batch; per chunk: rate tokens, re-check, render)──┐
        DKIM signing tasks (signing.py), a few chunks at once, beside the feeder ◀──┘
        ──▶ send queue
    senders (settings.concurrency tasks) ──(SMTP transactions, pipelined)──▶ results
    writer (writer.py) ──(one UPDATE per batch of results, under our lease)──▶ deliveries
    control (control.py, every 0.1 s) ── issue statuses, scheduler, leases, heartbeat

Its parts, and what each owns (the others reach it only through its methods):

    Board   (board.py)    the issue statuses as last read, and our pauses not yet written
    Claims  (claims.py)   the deliveries we hold, those waiting to be prepared, the results
    Servers (backoff.py)  per server: rate budget, throttling history, back-off
    Feeder  (feeder.py)   compiled issues, the round-robin, the claim and signing in flight
            (message_feed.py: transactional messages, the system issue's deliveries, first)
    Control (control.py)  its tick; it alone replaces the board's statuses
    Writer  (writer.py)   nothing: it takes what the others collected and writes it
    Dispatcher (here)     the senders and the order of start and stop

Why one process-wide event loop and no locks: every part runs as coroutines on the same
loop, and every method that changes a part's state does so without awaiting, so no
other part can see a change half-made. Only the SMTP transactions, the database round
trips and the DKIM signing (in a process pool) wait; those are where the concurrency is.

Why long-lived senders (settings.concurrency of them) rather than a task per message:
the concurrency is the number of SMTP transactions in flight, bounded by the senders;
the send queue between the feeder and them is short (2 x concurrency), so the feeder
prepares just ahead of what the servers take and memory stays flat in the send's size.
Each sender takes a connection from its transport's pool for a run of transactions: while
the queue holds more for the same transport, the next envelope goes out behind the last
content (smtp.py), one round trip a message.

Every claimed delivery stays held (Claims) until a result for it is written, so whatever
happens (pause, cancel, SIGTERM, a sender cancelled after the grace period) the unsent
ones are released back to the queue, and a crash leaves only leases that expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import uuid
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import make_engine, make_sessionmaker, utcnow
from app.delivery.backoff import Servers
from app.delivery.board import Board
from app.delivery.claims import Claims
from app.delivery.control import TICK, Control, hard_bounce, heartbeat
from app.delivery.feeder import Feeder
from app.delivery.items import Item
from app.delivery.parts import Parts
from app.delivery.queue import Result
from app.delivery.signing import Signer, start_signer
from app.delivery.smtp import local_hostname
from app.delivery.statements import single_statements
from app.delivery.transport import DeliveryError, Envelope, Transport, build_transports
from app.delivery.writer import Writer
from app.models import MESSAGES_ISSUE, Worker
from app.webhooks.sender import WebhookSender

log = logging.getLogger("tidings.dispatcher")

SIDE_GRACE = 3.0  # seconds the writer and control loops get to finish their turn on stop
STOP_GRACE = 20.0  # seconds in-flight sends get to finish on stop; with the rest, < 30 s


class Dispatcher:
    """Sends every queued delivery of every issue in 'sending', under leases, until stop()."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        transports: list[Transport],
    ) -> None:
        self.settings, self.sessionmaker, self.transports = settings, sessionmaker, transports
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = asyncio.Event()
        self.signer: Signer | None = None
        self._board = Board()
        self._claims = Claims(self._board)
        self._servers = Servers(transports, quota=settings.hourly_quota, sessionmaker=sessionmaker)
        self._sendq: asyncio.Queue[Item | None] = asyncio.Queue(max(2 * settings.concurrency, 4))
        self._streak: dict[int, int] = {}  # issue id -> consecutive failures (the senders')
        parts = Parts(settings, sessionmaker, single_statements(sessionmaker), self.owner,
                      self._board, self._claims, self._servers)  # fmt: skip
        self._feeder = Feeder(parts, sendq=self._sendq, stopping=self.stopping)
        self._control = Control(parts, feeder=self._feeder)
        self._writer = Writer(parts)

    # -- life cycle -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming, finish what is in flight, release the rest, then return from run()."""
        self.stopping.set()

    async def run(self) -> None:
        """Dispatch until stop(); then drain gracefully (within 30 s)."""
        self.signer = start_signer(self.settings)
        if self.signer is not None:  # registered means ready: no send waits for the pool
            await self.signer.ready()
        await heartbeat(self.sessionmaker, self.owner)
        # Looked up once before the senders start: twenty connections racing into the first
        # lookup each started a thread for the same answer.
        await local_hostname()
        feeder = asyncio.create_task(self._feeder.run(self.signer), name="feeder")
        senders = [asyncio.create_task(self._send_loop()) for _ in range(self.settings.concurrency)]
        side = [asyncio.create_task(self._control_loop()), asyncio.create_task(self._writer.run())]
        hooks = WebhookSender(settings=self.settings, sessionmaker=self.sessionmaker,
                              owner=self.owner, stopping=self.stopping).start()  # fmt: skip
        try:
            await self.stopping.wait()
        finally:
            self.stopping.set()
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
            await self._feeder.wind_down()
            while not self._sendq.empty():
                item = self._sendq.get_nowait()
                if item is not None:
                    self._claims.release(item.id)
            for _ in senders:
                self._sendq.put_nowait(None)
            _, late = await asyncio.wait(senders, timeout=STOP_GRACE)
            for task in late:  # a send stuck past the grace period: its outcome is unknown
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
            self._claims.release_all()
            # The writer and the control loop end between two transactions, not in one:
            # a transaction cancelled half-way can stay open on the server, holding row
            # locks that the final flush would then wait for forever.
            self._writer.close()
            _, late = await asyncio.wait(side, timeout=SIDE_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            await self._control.wind_down()
            await self._writer.final_flush()
            with contextlib.suppress(Exception):
                async with self.sessionmaker() as s, s.begin():
                    await s.execute(delete(Worker).where(Worker.id == self.owner))
            if self.signer is not None:
                self.signer.close()
            await asyncio.gather(hooks, return_exceptions=True)  # ends on self.stopping

    async def _control_loop(self) -> None:
        while not self._writer.closing:
            try:
                await self._control.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control loop: will retry")
            await asyncio.sleep(TICK)

    # -- sending ----------------------------------------------------------------------

    async def _send_loop(self) -> None:
        carry: Item | None = None  # taken from the queue by a run, but for another transport
        while True:
            item, carry = carry or await self._sendq.get(), None
            if item is None:
                return
            if self._board.status(item.issue_id) != "sending":
                self._claims.release(item.id)
                continue
            carry = await self._send_run(item)

    async def _send_run(self, item: Item) -> Item | None:
        """Send `item`, then the next ones in the queue on its connection while they are for
        its transport (transport.send_run); the one that was not, to be sent next."""
        transport, carry = item.transport, None
        run = {id(item.envelope): item}  # taken for this run and not yet reported, in order

        def more() -> Envelope | None:
            # Asked as the last message's content is written: what this sender would have
            # taken from the queue after the reply, taken now, if it is for this transport.
            nonlocal carry
            while carry is None:
                try:
                    nxt = self._sendq.get_nowait()
                except asyncio.QueueEmpty:
                    return None
                if nxt is None:  # stopping: put it back for the sender it was for
                    self._sendq.put_nowait(None)
                    return None
                if self._board.status(nxt.issue_id) != "sending":
                    self._claims.release(nxt.id)
                elif nxt.transport is not transport:
                    carry = nxt
                else:
                    run[id(nxt.envelope)] = nxt
                    return nxt.envelope
            return None

        def report(envelope: Envelope, outcome: str | DeliveryError) -> None:
            done = run.pop(id(envelope))
            if isinstance(outcome, DeliveryError):
                self._failed(done, outcome)
            else:
                self._sent(done)

        try:
            await transport.send_run(item.envelope, more, report)
        except Exception as exc:  # noqa: BLE001 - an unknown outcome is a temporary failure
            # The first one left was being sent; any after it had only its envelope out.
            unknown = list(run.values())
            if unknown:
                self._failed(unknown[0], DeliveryError(f"{type(exc).__name__}: {exc}"))
            for rest in unknown[1:]:
                self._claims.release(rest.id)
        return carry

    def _sent(self, item: Item) -> None:
        self._streak[item.issue_id] = 0
        self._servers.succeeded(item.transport.name)
        self._claims.emit(Result(item.id, "sent", message_id=item.message_id,
                                 server=item.transport.name[:255], sent_at=utcnow()))  # fmt: skip

    def _failed(self, item: Item, exc: DeliveryError) -> None:
        name, error = item.transport.name, str(exc)[:1000]
        now = utcnow()
        wait = self._servers.throttled(name, exc)
        if wait is not None:
            self._claims.emit(Result(item.id, "queued", refund=1, error=error,
                                     next_attempt_at=now + timedelta(seconds=wait)))  # fmt: skip
            return
        # A failing message is its own (a bad address), not its issue's: no streak to pause.
        streak = 0 if item.issue_id == MESSAGES_ISSUE else self._streak.get(item.issue_id, 0) + 1
        self._streak[item.issue_id] = streak
        delays = self.settings.retry_delays
        if exc.permanent or item.attempts > len(delays):
            self._claims.emit(Result(item.id, "failed", error=error))
            if exc.permanent and hard_bounce(exc.code, error):
                self._writer.bounced(item.id, item.envelope.recipients[0], error)
        else:
            when = now + timedelta(seconds=delays[max(0, item.attempts - 1)])
            self._claims.emit(Result(item.id, "queued", error=error, next_attempt_at=when))
        if streak and streak >= self.settings.failure_pause_threshold:
            reason = f"paused after {streak} consecutive failures; last: {error}"
            self._claims.pause(item.issue_id, reason)


async def run_worker(settings: Settings) -> None:
    """`tidings worker`: a dispatcher with no HTTP; SIGTERM/SIGINT drain it, then exit 0."""
    # No ping before each use of a pooled connection: it is two round trips (a transaction
    # begun and rolled back), and a dispatcher uses a connection some 50 times a second. A
    # connection the database dropped fails its next statement instead; SQLAlchemy then
    # empties the pool, and every part already retries a failed round trip.
    engine = make_engine(settings.database_url, pool_pre_ping=False)
    transports = build_transports(settings.smtp_url, settings.var_dir)
    dispatcher = Dispatcher(
        settings=settings, sessionmaker=make_sessionmaker(engine), transports=transports
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, dispatcher.stop)
    # Start-up's objects (modules, mappers, compiled statements) out of every later full
    # collection of the collector: a send makes many short-lived objects, and each full
    # collection would walk the whole start-up heap again.
    gc.collect()
    gc.freeze()
    log.info("worker %s started", dispatcher.owner)
    try:
        await dispatcher.run()
    finally:
        for t in transports:
            with contextlib.suppress(Exception):
                await t.close()
        await engine.dispose()
    log.info("worker %s stopped", dispatcher.owner)
