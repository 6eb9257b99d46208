"""Group commit for public sign-ups: the ones that arrive together share one transaction.

Under load the sign-up is bound by CPU, and a good part of it is per transaction, not per
sign-up: checking a connection out of the pool (and pinging it), BEGIN, COMMIT with its
WAL flush, returning the connection. `GroupCommit.submit` queues a sign-up; a batch takes
everything queued (up to MAX_BATCH) and runs each through signup.public_subscribe, one
after the other on one connection, then commits once. Nobody waits on purpose: when the
process is idle a batch is one sign-up, started at once; while MAX_IN_FLIGHT batches are
running, arrivals queue and go in the next batch, so the batches grow with the load.

Each caller is answered when its batch's COMMIT has returned, so its 2xx follows the
commit as ever. A sign-up refused for its input (Invalid: an unknown list, an address
that is not one) wrote nothing, so the batch carries on without it and that caller gets
its Invalid. Any other failure rolls the batch back and every caller in it gets
BatchFailed: the fast path then hands each one to the ordinary route, which runs it alone
in a transaction of its own, so one bad sign-up never fails the others. Two sign-ups of
one address in one batch run in order in one transaction: the second finds the first's
rows, as it would a moment later.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import core_transaction
from app.errors import Invalid
from app.subscribers.schemas import SubscribeIn
from app.subscribers.signup import SignUp, public_subscribe

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
        self.queue: list[tuple[SubscribeIn, Outcome]] = []
        self.in_flight: set[asyncio.Task[None]] = set()
        self.batches = 0  # committed: for tests and the benchmark's notes
        self.committed = 0

    async def submit(self, data: SubscribeIn) -> SignUp:
        """Write and commit one sign-up; Invalid for bad input, BatchFailed otherwise."""
        outcome: Outcome = asyncio.get_running_loop().create_future()
        self.queue.append((data, outcome))
        self._start()
        return await outcome

    def _start(self) -> None:
        while self.queue and len(self.in_flight) < self.max_in_flight:
            batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
            task = asyncio.create_task(self._run(batch), name="tidings-signup-batch")
            self.in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self._start()

    async def _run(self, batch: list[tuple[SubscribeIn, Outcome]]) -> None:
        results: list[SignUp | Invalid] = []
        try:
            async with core_transaction(self.engine) as conn:
                for data, _ in batch:
                    try:
                        results.append(await public_subscribe(
                            conn=conn, email=data.email, name=data.name, slugs=data.lists,
                            attributes=data.attributes,
                            check_deliverability=self.check_deliverability,
                        ))  # fmt: skip
                    except Invalid as exc:  # raised before it wrote anything
                        results.append(exc)
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
    if found is None:
        found = state.signup_batches = GroupCommit(
            state.engine, check_deliverability=state.settings.check_deliverability
        )
    return found
