"""How many database statements a dispatcher sends per 1,000 messages (issue 15's figure).

Run with -s to see the figure and its split by statement kind:
    .venv/bin/python -m pytest -q -s -m slow tests/delivery/test_statement_count.py
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from app.db import make_engine, make_sessionmaker
from app.delivery import queue
from app.delivery.dispatcher import Dispatcher
from app.delivery.transport import build_transports
from tests.delivery.helpers import new_issue, received, seed, send, status_of, wait_for
from tests.smtp import SMTPServer

N = 2000
pytestmark = pytest.mark.slow


def kind(statement: str) -> str:
    words = " ".join(statement.split()[:4]).lower()
    for label, start in (
        ("claim", "update deliveries set status = 'sending'"),
        ("record results", "update deliveries as d set"),
        ("record results", "with v"),
    ):
        if words.startswith(start) or start in statement.lower()[:60]:
            return label
    if "from deliveries" in statement.lower() and "join subscribers" in statement.lower():
        return "re-check targets"
    return words[:40]


async def test_statements_per_thousand_messages(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await app_factory()
    emails = await seed(db, N)
    issue_id = await new_issue(client)
    engine = make_engine(db)
    seen: Counter[str] = Counter()

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen[kind(statement)] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    # On PostgreSQL the re-checks and result writes go to asyncpg itself (driver_fetch),
    # past SQLAlchemy's events: counted here as they are sent.
    real_fetch = queue.driver_fetch

    async def counted_fetch(session: Any, sql: str, *args: Any) -> Any:
        rows = await real_fetch(session, sql, *args)
        if rows is not None:
            seen[kind(sql)] += 1
        return rows

    monkeypatch.setattr(queue, "driver_fetch", counted_fetch)
    settings = client.app.state.settings
    dispatcher = Dispatcher(settings=settings, sessionmaker=make_sessionmaker(engine),
                            transports=build_transports(smtpd.url, settings.var_dir))  # fmt: skip
    task = asyncio.create_task(dispatcher.run())
    try:
        await send(client, issue_id)

        async def done() -> bool:
            return await status_of(client, issue_id) == "sent"

        await wait_for(done, 120, "the send to finish")
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, timeout=40)
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        await engine.dispose()
    assert received(smtpd) == Counter(emails)  # each once
    total = sum(seen.values())
    per_thousand = total * 1000 / N
    backend = db.split(":")[0]
    print(f"\n{backend}: {total} statements for {N} messages, {per_thousand:.0f} per 1,000")
    for label, n in seen.most_common(15):
        print(f"  {n:6d}  {label}")
    # Batches, not messages: one claim per batch_size, one re-check per 50, one write of
    # results per 50 or 0.1 s. A statement per message would be 1,000 here.
    assert seen["claim"] >= 1 and per_thousand < 500, seen
    assert seen["re-check targets"] >= N / 50 and seen["record results"] >= 1, seen
