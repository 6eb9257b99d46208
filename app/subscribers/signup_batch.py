"""Group commit for public sign-ups: the ones that arrive together share one transaction.

Under load the sign-up is bound by CPU, in this process and in PostgreSQL, and most of it
is per statement and per transaction, not per sign-up: checking a connection out of the
pool (and pinging it), BEGIN, each statement's round trip and its triggers (the list
counts), COMMIT with its WAL flush. `GroupCommit.submit` queues a sign-up; a writer takes
what is queued (up to MAX_BATCH, each address once) and writes it set-based through
signup.subscribe_many, one lookup and two upserts for the lot, then commits once, and goes
on with what queued meanwhile on the connection it holds. When the process is idle a batch
is one sign-up, started at once; under load batches grow with it, and a writer gathers
briefly after a batch (GATHER_SECONDS) so that the load is not split into a batch of one
and a batch of the rest.

Each caller is answered when its batch's COMMIT has returned, so its 2xx follows the
commit as ever. A sign-up refused for its input (Invalid: an unknown list, an address
that is not one) writes nothing, so the batch goes on without it and that caller gets
its Invalid. Any other failure rolls the batch back and every caller in it gets
BatchFailed: the fast path then hands each one to the ordinary route, which runs it alone
in a transaction of its own, so one bad sign-up never fails the others. A second sign-up
of an address already in the batch waits for the next one, so it finds the first's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db import on_postgresql
from app.errors import Invalid
from app.subscribers.schemas import SubscribeIn
from app.subscribers.signup import Ask, SignUp, ask, subscribe_many

MAX_BATCH = 64  # sign-ups per transaction: a failed batch costs at most this many re-runs
# A second writer starts only when a whole batch is queued behind the first (which may be
# waiting on a lock a long transaction holds, an import's batch of 5,000 rows): two writers
# at every chance made half their batches of one sign-up, each paying a transaction.
MAX_IN_FLIGHT = 2
# After a batch, a writer waits up to GATHER_SECONDS for GATHER_SHARE of as many sign-ups
# as it just wrote: those callers are being answered and their clients' next sign-ups are
# on the way. Taking at once the one that came meanwhile split the load into a batch of
# one and a batch of the rest, each its own transaction (PostgreSQL's commit_delay, but
# only after a batch of more than one: an idle server writes each sign-up at once).
GATHER_SECONDS = 0.002
GATHER_SHARE = 0.5

Outcome = asyncio.Future[SignUp]


class BatchFailed(Exception):
    """The batch this sign-up was in did not commit; nothing of it was written."""


class GroupCommit:
    """One per process (app.state): sign-ups queued, written and committed in batches."""

    def __init__(self, engine: AsyncEngine, *, check_deliverability: bool) -> None:
        self.engine = engine
        self.check_deliverability = check_deliverability
        # SQLite takes one writer at a time: a second batch would only wait for its lock.
        self.max_in_flight = MAX_IN_FLIGHT if on_postgresql(engine) else 1
        self.queue: list[tuple[Ask, Outcome]] = []
        self.in_flight: set[asyncio.Task[None]] = set()
        self.busy: set[str] = set()  # the addresses of the batches in flight
        self.wanted = 0  # a writer gathering waits for this many queued (0: none waits)
        self.gathered = asyncio.Event()
        self.batches = 0  # committed: for tests and the benchmark's notes
        self.committed = 0

    async def submit(self, data: SubscribeIn) -> SignUp:
        """Write and commit one sign-up; Invalid for bad input, BatchFailed otherwise."""
        one = ask(data.email, data.name, data.lists, data.attributes,
                  check_deliverability=self.check_deliverability)  # fmt: skip
        if one.refused is not None:
            raise one.refused
        outcome: Outcome = asyncio.get_running_loop().create_future()
        self.queue.append((one, outcome))
        if self.wanted and len(self.queue) >= self.wanted:
            self.gathered.set()
        self._start()
        return await outcome

    def _start(self) -> None:
        """A writer more, if one may run and some queued address is not being written."""
        running = len(self.in_flight)
        if running >= self.max_in_flight or (running and len(self.queue) < MAX_BATCH):
            return  # the running writer takes them next
        if any(a.key not in self.busy for a, _ in self.queue):
            task = asyncio.create_task(self._writer(), name="tidings-signup-batch")
            self.in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self._start()  # what arrived for addresses the finished writer held

    def _take(self) -> list[tuple[Ask, Outcome]]:
        """The next batch from the queue: up to MAX_BATCH, no address being written."""
        batch: list[tuple[Ask, Outcome]] = []
        later: list[tuple[Ask, Outcome]] = []
        for item in self.queue:  # an address twice: the second in a later batch
            if len(batch) < MAX_BATCH and item[0].key not in self.busy:
                self.busy.add(item[0].key)
                batch.append(item)
            else:
                later.append(item)
        self.queue = later
        return batch

    async def _writer(self) -> None:
        """Write batches while there are any, on one connection held from batch to batch.

        The pool's checkout pings a connection (a round trip) before handing it out; a
        connection that has just committed needs no such check, so a busy writer keeps
        its own and gives it back when the queue is empty. One that failed is given back
        (SQLAlchemy discards it if it was the connection's fault) and the next batch
        takes a fresh one.
        """
        conn: AsyncConnection | None = None
        last = 0
        try:
            while True:
                if last > 1 and GATHER_SECONDS:
                    await self._gather(last)
                batch = self._take()
                if not batch:
                    break
                last = len(batch)
                try:
                    if conn is None:
                        conn = await self.engine.connect()
                    written = await self._write(conn, batch)
                except BaseException as exc:  # noqa: BLE001 - every caller hears of it
                    _fail(batch, exc)
                    written = False
                    if not isinstance(exc, Exception):
                        raise
                finally:
                    self.busy.difference_update(a.key for a, _ in batch)
                if not written and conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                    conn = None
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):  # nothing waits on it: only drop it
                    await conn.close()

    async def close(self, within: float = 5.0) -> None:
        """At shutdown, before the engine goes: the writers finish (a gather is 2 ms) and
        give their held connections back, rather than to a pool already disposed."""
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=within)

    async def _gather(self, last: int) -> None:
        """Wait (GATHER_SECONDS at most) until GATHER_SHARE of `last` sign-ups are queued."""
        want = max(1, int(last * GATHER_SHARE))
        if len(self.queue) >= want:
            return
        self.wanted = want
        self.gathered.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GATHER_SECONDS):
                await self.gathered.wait()
        self.wanted = 0

    async def _write(self, conn: AsyncConnection, batch: list[tuple[Ask, Outcome]]) -> bool:
        """One batch in one transaction on `conn`; False when it did not commit."""
        try:
            async with conn.begin():
                results = await subscribe_many(conn, [a for a, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every caller hears of it, nothing is lost
            _fail(batch, exc)
            return False
        self.batches += 1
        self.committed += sum(isinstance(r, SignUp) for r in results)
        for (_, outcome), result in zip(batch, results, strict=True):
            if outcome.done():  # its caller went away (cancelled): the write stands
                continue
            if isinstance(result, Invalid):
                outcome.set_exception(result)
            else:
                outcome.set_result(result)
        return True


def _fail(batch: list[tuple[Ask, Outcome]], exc: BaseException) -> None:
    """Every caller still waiting in `batch` gets BatchFailed: nothing of it was written."""
    for _, outcome in batch:
        if not outcome.done():
            failed = BatchFailed(f"{type(exc).__name__}: {exc}")
            failed.__cause__ = exc
            outcome.set_exception(failed)


async def close(state: Any) -> None:
    """This app's group commit, if it made one, ended (the lifespan's shutdown)."""
    found: GroupCommit | None = getattr(state, "signup_batches", None)
    if found is not None:
        await found.close()


def group_commit(state: Any) -> GroupCommit:
    """This app's GroupCommit, made on first use (after the lifespan made the engine)."""
    found: GroupCommit | None = getattr(state, "signup_batches", None)
    if found is None or found.engine is not state.engine:  # an app started again: its engine
        found = state.signup_batches = GroupCommit(
            state.engine, check_deliverability=state.settings.check_deliverability
        )
    return found
