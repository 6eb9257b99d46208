"""The import's fast paths give the slow paths' answers: CSV records read a chunk at a time
as line by line, attributes' JSON as json.dumps, and many small batches written two at a
time (PostgreSQL) with every rule kept: who is created, updated, skipped, enrolled and
announced, and the kept list counts."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select

from app.db import utcnow
from app.models import Delivery
from app.subscribers import import_writes, importer
from app.subscribers.csvrows import BadLine, RecordReader, Row
from app.subscribers.import_writes import attributes_json
from app.webhooks.models import WebhookEvent
from tests.conftest import AppClient, _asyncpg_dsn
from tests.issues.factory import make_issue, make_subscriber
from tests.subscribers.helpers import make_list
from tests.webhooks.helpers import register


class LineByLine(RecordReader):
    """The reader as it was: every line decoded and handed to csv.reader on its own."""

    def feed(self, chunk: bytes) -> Iterator[tuple[int, list[str]] | BadLine]:
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        for raw in lines:
            yield from self._take(raw)


def _records(reader: RecordReader, chunks: list[bytes]) -> list[Any]:
    items = [x for c in chunks for x in reader.feed(c)] + list(reader.finish())
    return [(x.line, x.error) if isinstance(x, BadLine) else x for x in items]


PIECES = [b"a", b"b", b",", b"\n", b"\n", b"\r", b"\r\n", b'"', b"\xc3\xa9", b"\xff", b"\x00",
          b"\xef\xbb\xbf", b" "]  # fmt: skip


def test_chunks_read_as_line_by_line() -> None:
    rnd = random.Random(15)
    for _ in range(6000):
        weights = [rnd.random() for _ in PIECES]
        if rnd.random() < 0.6:
            weights[PIECES.index(b'"')] = 0  # most files quote nothing: the fast path
        data = b"".join(rnd.choices(PIECES, weights, k=rnd.randint(0, 80)))
        if rnd.random() < 0.02:
            data += b"x" * 140_000 + b"\nq\n"  # past csv's field size limit
        cuts = sorted(rnd.sample(range(len(data) + 1), min(len(data) + 1, rnd.randint(0, 5))))
        chunks = [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert _records(RecordReader(), chunks) == _records(LineByLine(), chunks), chunks


def test_attributes_json_is_json_dumps() -> None:
    rnd = random.Random(15)
    alphabet = 'az AZ09"\\/\r\n\t\x00\x7f\u00e9\u20ac\u2028\ud800\U0001f600'
    for _ in range(3000):
        attributes = {
            "".join(rnd.choices(alphabet, k=rnd.randint(0, 6))): "".join(
                rnd.choices(alphabet, k=rnd.randint(0, 9))
            )
            for _ in range(rnd.randint(0, 4))
        }
        assert attributes_json(attributes) == json.dumps(attributes)


async def _count(client: AppClient, stmt: Any) -> int:
    async with client.app.state.sessionmaker() as session:
        return int(await session.scalar(stmt) or 0)


async def test_many_batches_two_at_a_time_keep_every_rule(
    app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH_ROWS", 25)  # 24 batches, two in flight
    client: AppClient = await app_factory(webhook_allow_private=True)
    await register(
        client, "http://127.0.0.1:9/hook", ["subscriber.created", "subscriber.confirmed"]
    )
    await make_list(client, "news")
    await make_list(client, "other")
    known = {
        "pending": {"lists": {"news": "pending"}},  # confirmed: updated, enrolled
        "elsewhere": {"lists": {"other": "confirmed"}},  # joins news: updated, enrolled
        "left": {"lists": {"news": "unsubscribed"}},  # her opt-out stays: skipped
        "blocked": {"status": "blocklisted"},  # never reactivated: skipped
        "member": {"lists": {"news": "confirmed"}},  # a new name: updated, not enrolled
    }
    for i in range(0, 600, 60):
        for kind, fields in known.items():
            await make_subscriber(client, f"{kind}{i}@example.org", **fields)
    erased = await make_subscriber(client, "erased@example.org")
    assert (await client.delete(f"/api/v1/subscribers/{erased}")).status_code == 204
    issues = []
    for after in (0, 60):  # two triggered issues: two batches lock both, in one order
        issue = await make_issue(client, trigger={"list": "news", "after_seconds": after})
        assert (await client.post(f"/api/v1/issues/{issue['id']}/activate")).status_code == 200
        issues.append(int(issue["id"]))
    lines = ["email,name,city"]
    for i in range(600):
        kind = list(known)[i // 60 % 5] if i % 60 == 0 else "new"
        lines.append(f"{kind}{i}@example.org,Person {i},Lyon")
        if i % 97 == 1:
            lines.append(f"NEW{i}@example.org,Again,")  # the same person twice: skipped
    lines.append("erased@example.org,Erased,")  # suppressed: skipped
    r = await client.post(
        "/api/v1/subscribers/import?list=news",
        content="\n".join(lines).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    result = r.json()
    new, confirmed = 590, 4  # confirmed: 2 pending, 2 from the other list
    assert result["errors"] == []
    assert (result["created"], result["updated"]) == (new, confirmed + 2)
    assert result["skipped"] == 2 + 2 + 7 + 1  # left, blocked, the repeats, the erased
    counts = (await client.get("/api/v1/lists/news")).json()["counts"]
    assert counts["confirmed"] == new + confirmed + 10  # with the 10 members already there
    for issue_id in issues:
        enrolled = await _count(
            client, select(func.count()).select_from(Delivery).where(Delivery.issue_id == issue_id)
        )
        stats = (await client.get(f"/api/v1/issues/{issue_id}/stats")).json()
        assert enrolled == stats["recipients"] == new + confirmed
    for event, expected in (("subscriber.created", new), ("subscriber.confirmed", new + confirmed)):
        written = await _count(
            client, select(func.count()).select_from(WebhookEvent).where(WebhookEvent.type == event)
        )
        assert written == expected, event


@pytest.mark.postgres_only
async def test_an_address_signed_up_since_the_lookup_is_left_out(db: str) -> None:
    """The plain INSERT fails on the unique key; its savepoint lets ON CONFLICT try again."""
    conn = await asyncpg.connect(_asyncpg_dsn(db))
    try:
        await conn.execute(
            "INSERT INTO subscribers (email, email_key, attributes, status, created_at,"
            " updated_at) VALUES ('taken@example.org', 'taken@example.org', '{}', 'active',"
            " now(), now())"
        )
        rows = [Row(2, f"{n}@example.org", f"{n}@example.org", None, {}) for n in ("a", "taken")]
        async with conn.transaction():
            made = await import_writes._insert_people(conn, rows, utcnow())
        assert len(made) == 1
        keys = await conn.fetch("SELECT email_key FROM subscribers ORDER BY email_key")
        assert [k for (k,) in keys] == ["a@example.org", "taken@example.org"]
    finally:
        await conn.close()
