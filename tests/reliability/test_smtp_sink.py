"""Postfix's smtp-sink as the SMTP server: a large run, 4xx, 5xx and dropped connections.

Real `tidings worker` processes on a private PostgreSQL send to smtp-sink on loopback.
What the sink took is counted from its per-message dumps (one file per message, split
by phase: a fault phase, then the sink restarted plain); what it refused, from its -v
log of the RCPT commands it read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from sqlalchemy import select

from app.db import make_engine
from app.models import Delivery, Subscriber
from tests.conftest import AppClient, need
from tests.reliability.harness import (
    WorkerProcess,
    api,
    create_issue,
    delivery_counts,
    seed,
    start_send,
    wait_for,
    worker_env,
)
from tests.reliability.sink import SmtpSink
from tests.smtp import free_port

pytestmark = pytest.mark.slow

# Ten retries one second apart: a fault phase of a few seconds never uses them all up,
# so every failure below is either the reply class deciding or a bug.
RETRIES = "1,1,1,1,1,1,1,1,1,1"
CONCURRENCY = 10


class Row(NamedTuple):
    status: str
    attempts: int
    last_error: str | None


@pytest.fixture
def sinks() -> Iterator[Callable[[], SmtpSink]]:
    """Make smtp-sink servers on free ports; every one is killed and its dumps removed."""
    need(
        bool(shutil.which("smtp-sink") or os.path.exists("/usr/sbin/smtp-sink")),
        "Debian package postfix (smtp-sink), installed behind a policy-rc.d that exits 101",
    )
    made: list[SmtpSink] = []

    def make() -> SmtpSink:
        made.append(SmtpSink(free_port()))
        return made[-1]

    yield make
    for sink in made:
        sink.close()


class Run(NamedTuple):
    client: AppClient
    issue_id: int
    workers: list[WorkerProcess]


@contextlib.asynccontextmanager
async def sending(
    url: str, sink: SmtpSink, tmp_path: Path, *, workers: int = 2, **env: Any
) -> AsyncIterator[Run]:
    """An issue to every seeded recipient, being sent by `workers` worker processes."""
    values: dict[str, Any] = {"retry_delays": RETRIES, "concurrency": CONCURRENCY, **env}
    procs = [
        WorkerProcess(worker_env(url, sink.url, tmp_path / "var", **values), tmp_path / f"w{i}.log")
        for i in range(workers)
    ]
    try:
        async with api(url, sink.url, tmp_path / "var") as client:
            issue_id = await create_issue(client)
            for w in procs:
                w.start()
            await start_send(client, issue_id)
            yield Run(client, issue_id, procs)
    finally:
        for w in procs:
            w.stop()


async def rows(url: str, issue_id: int) -> dict[str, Row]:
    """Every delivery of the issue, by recipient address, straight from the database."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                select(Subscriber.email, Delivery.status, Delivery.attempts, Delivery.last_error)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.issue_id == issue_id)
            )
            return {email: Row(status, attempts, err) for email, status, attempts, err in result}
    finally:
        await engine.dispose()


def issue_is(run: Run, status: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        r = await run.client.get(f"/api/v1/issues/{run.issue_id}")
        return bool(r.json()["status"] == status)

    return check


def nothing_in_flight(url: str, issue_id: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await delivery_counts(url, issue_id)).get("sending", 0) == 0

    return check


def tried_everyone(sink: SmtpSink, emails: list[str], *, min_seconds: float) -> Any:
    """The fault phase has refused every recipient once, some twice, for `min_seconds`."""
    started = time.monotonic()

    async def check() -> bool:
        seen = sink.rcpts()
        return (
            time.monotonic() - started >= min_seconds
            and len(seen) == len(emails)
            and max(seen.values()) >= 2
        )

    return check


def logs(run: Run) -> str:
    return "\n".join(w.tail() for w in run.workers)


async def test_large_run_every_recipient_exactly_once(
    private_db: str, tmp_path: Path, sinks: Callable[[], SmtpSink]
) -> None:
    """5,000 recipients, 2 workers, a plain smtp-sink: each accepted once, the issue sent."""
    count = 5000
    emails = await seed(private_db, count)
    sink = sinks().start()
    started = time.monotonic()
    # Nothing is killed here: a lease that a starved worker outlives would only repeat.
    async with sending(
        private_db, sink, tmp_path, batch_size=200, concurrency=20, lease_seconds=30
    ) as run:
        sent = await wait_for(issue_is(run, "sent"), timeout=180)
        seconds = time.monotonic() - started
        stats = (await run.client.get(f"/api/v1/issues/{run.issue_id}/stats")).json()
        assert sent, (await delivery_counts(private_db, run.issue_id), logs(run))
    sink.stop()  # every dump is closed before it is counted
    got = sink.accepted()
    print(f"\nsmtp-sink large run: {count} in {seconds:.1f} s; {sum(got.values())} accepted")
    assert got == Counter(emails), (len(got), sum(got.values()), sink.partial())
    assert await delivery_counts(private_db, run.issue_id) == {"sent": count}
    assert stats["sent"] == count and stats["failed"] == 0


@pytest.mark.parametrize("command", ["RCPT", "DATA"])
async def test_4xx_for_a_while_then_everyone_delivered(
    private_db: str, tmp_path: Path, sinks: Callable[[], SmtpSink], command: str
) -> None:
    """`-r CMD`: 450 to every RCPT or DATA for a few seconds, then a plain restart."""
    count = 600
    emails = await seed(private_db, count)
    sink = sinks().start("-r", command)
    async with sending(private_db, sink, tmp_path) as run:
        faulted = await wait_for(tried_everyone(sink, emails, min_seconds=2), timeout=30)
        assert faulted, (sink.rcpts().total(), logs(run))
        sink.start()  # the same port, without -r: a server that got better
        sent = await wait_for(issue_is(run, "sent"), timeout=60)
        assert sent, (await delivery_counts(private_db, run.issue_id), logs(run))
    sink.stop()
    refused = sink.rcpts(0)  # every RCPT the faulty phase read was answered 450 (RCPT or DATA)
    log = await rows(private_db, run.issue_id)
    attempts = Counter({e: r.attempts for e, r in log.items()})
    # Attempts the sink never logged were lost to the restart itself: a pooled connection
    # to the killed process, or "connection refused" in the moment nothing listened.
    unlogged = attempts.total() - count - refused.total()
    print(
        f"\nsmtp-sink -r {command}: {refused.total()} refusals, {attempts.total()} attempts "
        f"for {count}, max {max(attempts.values())} per recipient, {unlogged} cut by the restart"
    )
    assert not sink.accepted(0) and not sink.partial(0)  # nothing got past the 450
    assert sink.accepted(1) == Counter(emails)  # then everyone, exactly once
    assert {r.status for r in log.values()} == {"sent"} and len(log) == count
    for e in emails:  # each refusal cost one attempt, and a 4xx is retried, not final
        # The restart takes well under the 1 s retry delay: it can cost each one attempt.
        assert 0 <= attempts[e] - 1 - refused[e] <= 1, (e, attempts[e], refused[e])
    assert max(attempts.values()) <= 1 + len(RETRIES.split(","))


async def test_5xx_is_final_and_a_failure_streak_pauses(
    private_db: str, tmp_path: Path, sinks: Callable[[], SmtpSink]
) -> None:
    """`-f RCPT`: 500 to everyone; each fails after one attempt, and the streak rule applies.

    The dispatcher (app/delivery/dispatcher.py, `_failed`) counts consecutive failures per
    issue in each worker, 5xx included, and pauses the issue with the reason once a worker's
    streak reaches TIDINGS_FAILURE_PAUSE_THRESHOLD: a server that refuses everything pauses
    the send instead of failing the whole list. With the threshold out of reach, every
    delivery fails once and the issue finishes ('sent': the send is over; stats say failed).
    """
    count, threshold = 300, 20
    emails = await seed(private_db, count)
    sink = sinks().start("-f", "RCPT")
    async with sending(private_db, sink, tmp_path, failure_pause_threshold=threshold) as run:
        paused = await wait_for(issue_is(run, "paused"), timeout=30)
        assert paused, (await delivery_counts(private_db, run.issue_id), logs(run))
        assert await wait_for(nothing_in_flight(private_db, run.issue_id), timeout=15)
        issue = (await run.client.get(f"/api/v1/issues/{run.issue_id}")).json()
        first = await rows(private_db, run.issue_id)
        tried = sink.rcpts()

        # The same refusing server, workers that will not pause: resume and let it finish.
        for w in run.workers:
            w.stop()
        env = worker_env(
            private_db, sink.url, tmp_path / "var",
            retry_delays=RETRIES, concurrency=CONCURRENCY, failure_pause_threshold=100000,
        )  # fmt: skip
        run.workers[:] = [WorkerProcess(env, tmp_path / f"again{i}.log") for i in range(2)]
        for w in run.workers:
            w.start()
        r = await run.client.post(f"/api/v1/issues/{run.issue_id}/resume")
        assert r.status_code == 200, r.text
        finished = await wait_for(issue_is(run, "sent"), timeout=60)
        assert finished, (await delivery_counts(private_db, run.issue_id), logs(run))
        stats = (await run.client.get(f"/api/v1/issues/{run.issue_id}/stats")).json()
    sink.stop()
    failed_first = {e for e, row in first.items() if row.status == "failed"}
    final = await rows(private_db, run.issue_id)
    refused = sink.rcpts()
    print(
        f"\nsmtp-sink -f RCPT: paused after {len(failed_first)} failures "
        f"({issue['status_reason']!r}); then {stats['failed']} failed, {refused.total()} RCPTs"
    )
    # The pause: each worker stops at its own streak, plus what its senders had in flight
    # (up to CONCURRENCY; twice that if a control tick read 'sending' from the database
    # just before the worker's own pause was written, and one more tick's worth went out).
    assert "consecutive failures" in issue["status_reason"], issue
    assert "500" in issue["status_reason"]
    assert threshold <= len(failed_first) <= 2 * (threshold + 2 * CONCURRENCY)
    assert set(tried) == failed_first  # whoever the server saw failed, and no one else
    assert all(row.attempts == 0 for e, row in first.items() if e not in failed_first)
    # The end: everyone failed on the first and only attempt; nothing was ever retried.
    assert refused == Counter(emails)
    assert all(r.status == "failed" and r.attempts == 1 for r in final.values()), final
    assert all("500 5.3.0" in (r.last_error or "") for r in final.values())
    assert stats["status"] == "sent" and stats["failed"] == count and stats["sent"] == 0
    assert not sink.accepted()


@pytest.mark.parametrize("command", ["RCPT", "."])
async def test_disconnects_lose_no_one(
    private_db: str, tmp_path: Path, sinks: Callable[[], SmtpSink], command: str
) -> None:
    """`-q CMD`: the sink hangs up without replying after every RCPT, or after the final dot.

    A client that loses the connection before the reply cannot know whether the server
    kept the message, so it must send again (at least once, RFC 5321 6.1). After RCPT
    the server has nothing yet: no duplicate is possible. After the final dot the server
    has read the whole message (smtp-sink dumps it, as an MTA would have queued it) and
    then hung up: that retry is a duplicate, and it is the only kind there may be.
    """
    count = 600
    emails = await seed(private_db, count)
    sink = sinks().start("-q", command)
    async with sending(private_db, sink, tmp_path) as run:
        faulted = await wait_for(tried_everyone(sink, emails, min_seconds=2), timeout=30)
        assert faulted, (sink.rcpts().total(), logs(run))
        sink.start()
        sent = await wait_for(issue_is(run, "sent"), timeout=60)
        assert sent, (await delivery_counts(private_db, run.issue_id), logs(run))
    sink.stop()
    kept_then_dropped = sink.accepted(0)  # whole messages read before the hang-up
    cut = sink.partial(0)  # cut off by the restart mid-DATA: never whole, never delivered
    after = sink.accepted(1)
    total = sink.accepted()
    duplicates = sum(n - 1 for n in total.values())
    print(
        f"\nsmtp-sink -q {command}: {sink.rcpts(0).total()} hang-ups, "
        f"{kept_then_dropped.total()} after the whole message, {cut.total()} cut mid-DATA; "
        f"{duplicates} duplicates"
    )
    assert set(total) == set(emails)  # no one lost
    # Nobody got a 250 from the hanging-up sink, so the restarted one took everyone once.
    assert after == Counter(emails)
    assert await delivery_counts(private_db, run.issue_id) == {"sent": count}
    # Duplicates are exactly the messages the server had read in full before dropping.
    assert duplicates == kept_then_dropped.total()
    if command == "RCPT":
        assert duplicates == 0 and not cut
    else:
        assert duplicates > 0
