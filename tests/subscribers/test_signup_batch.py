"""The group commit's writers (app/subscribers/signup_batch.py): one connection each, held
from batch to batch while sign-ups keep coming, given back when the queue is empty, and
never used again after a batch failed on it; and the fast path's confirmations, which
refresh a stale branding once between them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, text

from app.subscribers import signup_batch
from app.subscribers.schemas import SubscribeIn
from app.subscribers.signup import SignUp
from app.subscribers.signup_batch import BatchFailed, group_commit
from tests.conftest import AppClient, make_list


def _ask(i: int) -> SubscribeIn:
    return SubscribeIn(email=f"batch{i}@example.com", lists=["news"])


async def _sign_ups(group: Any, count: int) -> list[Any]:
    """`count` sign-ups: the first alone in a batch, the others queued while it is written."""
    first = asyncio.create_task(group.submit(_ask(0)))
    while not group.busy:  # its writer has taken it
        await asyncio.sleep(0)
    rest = [group.submit(_ask(i)) for i in range(1, count)]
    return await asyncio.gather(first, *rest, return_exceptions=True)


async def _idle(group: Any) -> None:
    """Until the writers have ended (each gathers briefly after its last batch)."""
    for _ in range(1000):
        if not group.in_flight:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("a writer is still running")


def _checkouts(engine: Any) -> list[int]:
    """A list that grows by one at each connection the pool hands out."""
    seen: list[int] = []
    event.listen(engine.sync_engine, "checkout", lambda *_: seen.append(1))
    return seen


async def test_a_busy_writer_keeps_its_connection(client: AppClient) -> None:
    await make_list(client, "news")
    group = group_commit(client.app.state)
    checkouts = _checkouts(group.engine)
    outcomes = await _sign_ups(group, 40)
    assert all(isinstance(o, SignUp) and o.status == "pending" for o in outcomes)
    assert group.committed == 40
    # The first sign-up starts a batch alone; the rest (fewer than a whole batch: no
    # second writer) queue behind it and follow on the connection already held.
    assert (group.batches, len(checkouts)) == (2, 1)
    await _idle(group)
    assert group.engine.sync_engine.pool.checkedout() == 0  # all given back when idle


async def test_shutdown_waits_for_the_writers_to_give_their_connections_back(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer gathers a moment after its last batch, holding its connection: the
    lifespan's shutdown (signup_batch.close) lets it give it back before the pool goes."""
    monkeypatch.setattr(signup_batch, "GATHER_SECONDS", 0.5)  # a moment the test can see
    await make_list(client, "news")
    group = group_commit(client.app.state)
    await _sign_ups(group, 6)  # two batches: the writer gathers after the second
    assert group.in_flight
    await signup_batch.close(client.app.state)
    assert not group.in_flight
    assert group.engine.sync_engine.pool.checkedout() == 0


async def test_a_failed_batch_gives_up_its_connection(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch breaks its connection: its caller hears BatchFailed, nothing of it is
    written, and the batches after it commit on a fresh connection."""
    await make_list(client, "news")
    group = group_commit(client.app.state)
    group.max_in_flight = 1  # one writer: the failed connection would be its next one
    real = signup_batch.subscribe_many
    calls: list[int] = []

    async def breaking(conn: Any, asks: list[Any]) -> Any:
        calls.append(len(asks))
        if len(calls) == 1:
            if conn.dialect.name == "postgresql":  # the server drops the connection
                await conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
            raise RuntimeError("the connection broke")
        return await real(conn, asks)

    monkeypatch.setattr(signup_batch, "subscribe_many", breaking)
    outcomes = await _sign_ups(group, 10)
    assert isinstance(outcomes[0], BatchFailed)
    assert all(isinstance(o, SignUp) for o in outcomes[1:])
    assert len(calls) >= 2 and group.committed == 9
    await _idle(group)
    async with client.app.state.engine.connect() as conn:
        emails = set((await conn.execute(text("SELECT email FROM subscribers"))).scalars())
    assert emails == {f"batch{i}@example.com" for i in range(1, 10)}
    assert group.engine.sync_engine.pool.checkedout() == 0


@pytest.mark.postgres_only
async def test_a_whole_batch_behind_a_stuck_writer_gets_a_second_one(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first writer waits (as on a lock a long transaction holds); once MAX_BATCH
    sign-ups are queued behind it a second writer commits them meanwhile."""
    await make_list(client, "news")
    group = group_commit(client.app.state)
    real = signup_batch.subscribe_many
    release = asyncio.Event()

    async def stuck_first(conn: Any, asks: list[Any]) -> Any:
        if any(a.key == "batch0@example.com" for a in asks):
            await release.wait()
        return await real(conn, asks)

    monkeypatch.setattr(signup_batch, "subscribe_many", stuck_first)
    first = asyncio.create_task(group.submit(_ask(0)))
    while not group.busy:
        await asyncio.sleep(0)
    rest = [group.submit(_ask(i)) for i in range(1, signup_batch.MAX_BATCH + 1)]
    answered = await asyncio.wait_for(asyncio.gather(*rest), 30)
    assert all(isinstance(o, SignUp) for o in answered) and not first.done()
    release.set()
    assert isinstance(await first, SignUp)
    assert group.committed == signup_batch.MAX_BATCH + 1


async def test_confirmations_that_find_the_branding_stale_refresh_it_once(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every confirmation (and page) in flight finds the snapshot stale at once: one refresh,
    not one each, and no one waits for it."""
    from app import branding

    real = branding._load
    loads: list[int] = []

    async def counted(session: Any, settings: Any) -> None:
        loads.append(1)
        await real(session, settings)

    monkeypatch.setattr(branding, "_load", counted)
    branding.reset()  # stale, as every REFRESH_SECONDS
    await asyncio.gather(*(branding.refresh_if_stale(client.app.state) for _ in range(20)))
    assert len(loads) == 1
    branding.reset()
    pages = await asyncio.gather(*(client.get("/subscribe") for _ in range(10)))
    assert len(loads) == 2, [p.status_code for p in pages]
    assert branding.current(client.app.state.settings) is not None
