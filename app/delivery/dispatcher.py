"""The dispatcher: claims deliveries, renders, signs, sends, and records every result.

One asyncio pipeline per process, with no per-message database round trip:

    feeder (feeder.py) ──(claim a batch; per chunk: rate tokens, re-check, render)──┐
        DKIM signing tasks (signing.py), a few chunks at once, beside the feeder ◀──┘
        ──▶ send queue
    senders (settings.concurrency tasks) ──(one SMTP transaction each)──▶ results
    writer ──(one UPDATE per batch of results, guarded by our lease)──▶ deliveries
    control (every TICK, 0.1 s) ── issue statuses, scheduler, lease upkeep, heartbeat

The senders are long-lived coroutines (no task per message); each takes a connection
from its transport's pool for one transaction. Results, metrics and back-offs are
collected in memory and written by the writer every 0.1 s in one transaction.

Every claimed delivery stays in `held` until a result for it is written, so whatever
happens (pause, cancel, SIGTERM, a sender cancelled after the grace period) the
unsent ones are released back to the queue, and a crash leaves only leases that expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections import Counter, deque
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.config import Settings
from app.db import make_engine, make_sessionmaker, utcnow
from app.delivery import queue, ratelimit, signing
from app.delivery.control import TICK, control_tick, hard_bounce, record_hard_bounces
from app.delivery.feeder import Item, feed_loop
from app.delivery.queue import Result
from app.delivery.signing import Signer, start_signer
from app.delivery.transport import DeliveryError, Transport, build_transports
from app.issues import lifecycle
from app.models import Worker
from app.webhooks.sender import WebhookSender

log = logging.getLogger("tidings.dispatcher")

THROTTLE_CODES = (421, 451, 452)
FLUSH_AT = 50  # results that make the writer write at once instead of within 0.1 s
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
        self.wake = asyncio.Event()  # set by the control tick when an issue starts sending
        self.flush_now = asyncio.Event()  # set when FLUSH_AT results wait to be written
        self.closing = False  # the writer and control loops end at their next turn
        self.status: dict[int, str] = {}  # issue id -> status, refreshed every control tick (0.1 s)
        self.held: dict[int, int] = {}  # claimed delivery id -> issue id, until its result
        self.buffer: dict[int, deque[int]] = {}  # claimed, not yet prepared, per issue
        self.results: list[Result] = []
        self.pauses: dict[int, str] = {}
        self.bounces: list[tuple[int, str, str]] = []  # (delivery id, email, reply)
        self.blocks: dict[str, float] = {}  # server -> back-off seconds to write
        self.budgets = {
            t.name: ratelimit.Budget(
                key=t.name, rate=t.rate, quota=settings.hourly_quota, sessionmaker=sessionmaker
            )  # fmt: skip
            for t in transports
        }
        self.backoff: dict[str, float] = {}
        self.throttles: dict[str, deque[float]] = {}
        self.streak: dict[int, int] = {}
        self.compiled: dict[int, asyncio.Future[Any]] = {}  # issue id -> its compilation
        self.sendq: asyncio.Queue[Item | None] = asyncio.Queue(max(2 * settings.concurrency, 4))
        self.signer: Signer | None = None
        self.signing: set[asyncio.Task[None]] = set()  # chunks being DKIM-signed
        self.counted: Counter[str] = Counter()  # results not yet added to the metrics
        self.sign_slots = asyncio.Semaphore(signing.MAX_IN_FLIGHT)
        self.turn = 0  # the feeder's round-robin over sending issues
        self.claiming: asyncio.Future[list[int]] | None = None  # the feeder's last claim
        self._task: asyncio.Task[Any] | None = None

    # -- life cycle -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming, finish what is in flight, release the rest, then return from run()."""
        self.stopping.set()

    async def run(self) -> None:
        """Dispatch until stop(); then drain gracefully (within 30 s)."""
        self.signer = start_signer(self.settings)
        if self.signer is not None:  # registered means ready: no send waits for the pool
            await self.signer.ready()
        await self._heartbeat(first=True)
        feeder = asyncio.create_task(feed_loop(self), name="feeder")
        senders = [asyncio.create_task(self._send_loop()) for _ in range(self.settings.concurrency)]
        side = [asyncio.create_task(self._control_loop()), asyncio.create_task(self._write_loop())]
        hooks = WebhookSender(settings=self.settings, sessionmaker=self.sessionmaker,
                              owner=self.owner, stopping=self.stopping).start()  # fmt: skip
        try:
            await self.stopping.wait()
        finally:
            self.stopping.set()
            feeder.cancel()
            for task in self.signing:  # what they held is released below, with the rest
                task.cancel()
            await asyncio.gather(feeder, *self.signing, return_exceptions=True)
            if self.claiming is not None:  # a claim the feeder left: its rows join `held`
                await asyncio.gather(self.claiming, return_exceptions=True)
            while not self.sendq.empty():
                item = self.sendq.get_nowait()
                if item is not None:
                    self.release(item.id)
            for _ in senders:
                self.sendq.put_nowait(None)
            _, late = await asyncio.wait(senders, timeout=STOP_GRACE)
            for task in late:  # a send stuck past the grace period: its outcome is unknown
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
            for delivery_id in list(self.held):
                self.release(delivery_id)
            # The writer and the control loop end between two transactions, not in one:
            # a transaction cancelled half-way can stay open on the server, holding row
            # locks that the final flush would then wait for forever.
            self.closing = True
            self.flush_now.set()
            _, late = await asyncio.wait(side, timeout=SIDE_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            await self._final_flush()
            if self.signer is not None:
                self.signer.close()
            await asyncio.gather(hooks, return_exceptions=True)  # ends on self.stopping

    async def _final_flush(self) -> None:
        deadline = time.monotonic() + 5
        while (self.results or self.pauses) and time.monotonic() < deadline:
            if not await self._flush():
                await asyncio.sleep(0.5)
        with contextlib.suppress(Exception):
            async with self.sessionmaker() as s, s.begin():
                await s.execute(delete(Worker).where(Worker.id == self.owner))

    async def _heartbeat(self, first: bool = False) -> None:
        async with self.sessionmaker() as s, s.begin():
            row = await s.get(Worker, self.owner)
            if row is None:
                s.add(Worker(id=self.owner, hostname=socket.gethostname()[:255], pid=os.getpid()))
            else:
                row.heartbeat_at = utcnow()

    # -- sending ----------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            item = await self.sendq.get()
            if item is None:
                return
            if self.status.get(item.issue_id) != "sending":
                self.release(item.id)
                continue
            try:
                reply = await item.transport.send(item.envelope)
            except DeliveryError as exc:
                self._failed(item, exc)
            except Exception as exc:  # noqa: BLE001 - an unknown outcome is a temporary failure
                self._failed(item, DeliveryError(f"{type(exc).__name__}: {exc}"))
            else:
                self._sent(item, reply)

    def _sent(self, item: Item, reply: str) -> None:
        now = utcnow()
        self.streak[item.issue_id] = 0
        self.backoff.pop(item.transport.name, None)
        self.emit(Result(item.id, "sent", message_id=item.message_id,
                         server=item.transport.name[:255], sent_at=now))  # fmt: skip

    def _is_throttle(self, name: str, exc: DeliveryError) -> bool:
        if exc.code not in THROTTLE_CODES:
            return False
        recent = self.throttles.setdefault(name, deque(maxlen=3))
        recent.append(time.monotonic())
        # 421 says the server as a whole wants us gone; 451/452 only when they come in a burst.
        return exc.code == 421 or (len(recent) == 3 and recent[-1] - recent[0] < 5.0)

    def _failed(self, item: Item, exc: DeliveryError) -> None:
        name, error = item.transport.name, str(exc)[:1000]
        now = utcnow()
        if self._is_throttle(name, exc):
            budget = self.budgets[name]
            if budget.blocked_local < time.time():  # a new episode: back off twice as long
                self.backoff[name] = min(60.0, max(1.0, 2 * self.backoff.get(name, 0.5)))
                budget.blocked_local = time.time() + self.backoff[name]
                budget.drop()
                self.blocks[name] = self.backoff[name]
            wait = max(1.0, budget.blocked_local - time.time())
            self.emit(Result(item.id, "queued", refund=1, error=error,
                             next_attempt_at=now + timedelta(seconds=wait)))  # fmt: skip
            return
        streak = self.streak.get(item.issue_id, 0) + 1
        self.streak[item.issue_id] = streak
        delays = self.settings.retry_delays
        if exc.permanent or item.attempts > len(delays):
            self.emit(Result(item.id, "failed", error=error))
            if exc.permanent and hard_bounce(exc.code, error):
                self.bounces.append((item.id, item.envelope.recipients[0], error))
        else:
            when = now + timedelta(seconds=delays[max(0, item.attempts - 1)])
            self.emit(Result(item.id, "queued", error=error, next_attempt_at=when))
        if streak >= self.settings.failure_pause_threshold:
            self.pause(item.issue_id, f"paused after {streak} consecutive failures; last: {error}")

    def pause(self, issue_id: int, reason: str) -> None:
        if self.status.get(issue_id) == "sending":
            self.status[issue_id] = "paused"
            self.pauses[issue_id] = reason
            self.release_issue(issue_id)

    def release_issue(self, issue_id: int) -> None:
        """Give back at once what we claimed of an issue that left 'sending'."""
        buf = self.buffer.pop(issue_id, deque())
        for delivery_id in buf:
            self.release(delivery_id)

    def release(self, delivery_id: int) -> None:
        issue_id = self.held.get(delivery_id)
        status = "cancelled" if self.status.get(issue_id or 0) == "cancelled" else "queued"
        self.emit(Result(delivery_id, status, refund=1))

    def emit(self, result: Result) -> None:
        if self.held.pop(result.id, None) is None:
            return  # already given a result (or never ours)
        self.results.append(result)
        if len(self.results) >= FLUSH_AT:
            self.flush_now.set()
        status = result.status
        if status == "queued":
            status = "released" if result.refund else "retry"
        self.counted[status] += 1  # added to the metrics with the next write, not per message

    # -- writing results and control ----------------------------------------------------

    async def _write_loop(self) -> None:
        # Every 0.1 s, or as soon as FLUSH_AT results wait: a message sent but not yet
        # recorded is what a crash would send twice, so that window is kept small in
        # messages, not only in time, however fast we send.
        while not self.closing:
            await ratelimit._sleep(0.1, self.flush_now)
            self.flush_now.clear()
            if self.results or self.pauses or self.blocks or self.bounces:
                if not await self._flush():
                    await asyncio.sleep(1.0)

    async def _flush(self) -> bool:
        # Bounces are taken with their results: the bounce policy must see a delivery only
        # after its failure is written (it moves the row past 'sending', which the write
        # of a result written after it would then skip, losing its SMTP reply).
        results, self.results = self.results, []
        bounces, self.bounces = self.bounces, []
        pauses = dict(self.pauses)  # kept until written: the control tick reads them
        blocks, self.blocks = self.blocks, {}
        try:
            async with self.sessionmaker() as s, s.begin():
                for issue_id, reason in pauses.items():
                    await lifecycle.pause(s, issue_id, reason)
                await queue.record(session=s, owner=self.owner, results=results)
                if results and not self.held:
                    # We hold nothing more: if no one else does, the issue is done now
                    # rather than at the next control tick.
                    await lifecycle.finish_sending(session=s)
                for name, seconds in blocks.items():
                    await ratelimit.block(session=s, key=name, seconds=seconds)
        except BaseException as exc:
            # Put them back: a failed write is retried, and a writer cancelled mid-write
            # (on stop) leaves them to the final flush. Writing one twice is harmless:
            # the second finds no lease of ours.
            self.results[:0] = results
            self.bounces[:0] = bounces
            self.blocks = {**blocks, **self.blocks}
            if not isinstance(exc, Exception):
                raise
            log.exception("writing %d results failed; will retry", len(results))
            return False
        for issue_id in pauses:
            self.pauses.pop(issue_id, None)
        counted, self.counted = self.counted, Counter()
        for label, n in counted.items():
            metrics.messages.labels(label).inc(n)
        if bounces:
            await record_hard_bounces(self.sessionmaker, self.settings, bounces)
        return True

    async def _control_loop(self) -> None:
        tick = 0
        while not self.closing:
            try:
                await control_tick(self, tick)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control loop: will retry")
            tick += 1
            await asyncio.sleep(TICK)


async def run_worker(settings: Settings) -> None:
    """`tidings worker`: a dispatcher with no HTTP; SIGTERM/SIGINT drain it, then exit 0."""
    engine = make_engine(settings.database_url)
    transports = build_transports(settings.smtp_url, settings.var_dir)
    dispatcher = Dispatcher(
        settings=settings, sessionmaker=make_sessionmaker(engine), transports=transports
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, dispatcher.stop)
    log.info("worker %s started", dispatcher.owner)
    try:
        await dispatcher.run()
    finally:
        for t in transports:
            with contextlib.suppress(Exception):
                await t.close()
        await engine.dispose()
    log.info("worker %s stopped", dispatcher.owner)
