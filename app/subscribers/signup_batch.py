"""Group commit for public sign-ups: the ones that arrive together share one transaction.

Under load the sign-up is bound by CPU, in this process and in PostgreSQL, and most of it
is per statement and per transaction, not per sign-up: checking a connection out of the
pool (and pinging it), BEGIN, each statement's round trip and its triggers (the list
counts), COMMIT with its WAL flush. `GroupCommit.submit` queues a sign-up; a batch takes
what is queued (up to MAX_BATCH, each address once) and writes it set-based through
signup.subscribe_many, two lookups and two upserts for the lot, then commits once. Nobody
waits on purpose: when the process is idle a batch is one sign-up, started at once; while
MAX_IN_FLIGHT batches are running, arrivals queue for the next, so batches grow with load.

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
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import core_transaction
from app.errors import Invalid
from app.subscribers.schemas import SubscribeIn
from app.subscribers.signup import Ask, SignUp, ask, subscribe_many

MAX_BATCH = 64  # sign-ups per transaction: a failed batch costs at most this many re-runs
MAX_IN_FLIGHT = 2  # one batch builds its statements while the other waits on the database

Outcome = asyncio.Future[SignUp]


class BatchFailed(Exception):
    """The batch this sign-up was in did not commit; nothing of it was written."""


class GroupCommit:
    """One per process (app.state): sign-ups queued, written and committed in batches."""

    def __init__(self, engine: AsyncEngine, *, check_deliverability: bool) -> None:
        self.engine = engine
        self.check_deliverability = check_deliverability
        # SQLite takes one writer at a time: a second batch would only wait for its lock.
        self.max_in_flight = 1 if engine.dialect.name == "sqlite" else MAX_IN_FLIGHT
        self.queue: list[tuple[Ask, Outcome]] = []
        self.in_flight: set[asyncio.Task[None]] = set()
        self.busy: set[str] = set()  # the addresses of the batches in flight
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
        self._start()
        return await outcome

    def _start(self) -> None:
        while self.queue and len(self.in_flight) < self.max_in_flight:
            batch: list[tuple[Ask, Outcome]] = []
            later: list[tuple[Ask, Outcome]] = []
            for item in self.queue:  # an address twice: the second in a later batch
                if len(batch) < MAX_BATCH and item[0].key not in self.busy:
                    self.busy.add(item[0].key)
                    batch.append(item)
                else:
                    later.append(item)
            self.queue = later
            if not batch:
                return  # all queued addresses are being written: the next _done starts them
            task = asyncio.create_task(self._run(batch), name="tidings-signup-batch")
            self.in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self._start()

    async def _run(self, batch: list[tuple[Ask, Outcome]]) -> None:
        try:
            await self._write(batch)
        finally:
            self.busy.difference_update(a.key for a, _ in batch)

    async def _write(self, batch: list[tuple[Ask, Outcome]]) -> None:
        try:
            async with core_transaction(self.engine) as conn:
                results = await subscribe_many(conn, [a for a, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - every caller hears of it, nothing is lost
            for _, outcome in batch:
                if not outcome.done():
                    failed = BatchFailed(f"{type(exc).__name__}: {exc}")
                    failed.__cause__ = exc
                    outcome.set_exception(failed)
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.committed += sum(isinstance(r, SignUp) for r in results)
        for (_, outcome), result in zip(batch, results, strict=True):
            if outcome.done():  # its caller went away (cancelled): the write stands
                continue
            if isinstance(result, Invalid):
                outcome.set_exception(result)
            else:
                outcome.set_result(result)


def group_commit(state: Any) -> GroupCommit:
    """This app's GroupCommit, made on first use (after the lifespan made the engine)."""
    found: GroupCommit | None = getattr(state, "signup_batches", None)
    if found is None or found.engine is not state.engine:  # an app started again: its engine
        found = state.signup_batches = GroupCommit(
            state.engine, check_deliverability=state.settings.check_deliverability
        )
    return found
