"""Subscriber search: the same answers on both databases, in keyset pages, index-served on PG."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, insert

from app.db import utcnow
from app.models import Subscriber, Subscription
from tests.conftest import AppClient, make_list

# Names and addresses chosen so that needles of every length hit a few rows, many or none,
# with LIKE's wildcards and the escape character as literal text.
NAMES = ["Ann Berg", "Anna Lind", "Bo Ek", None, "Zoë Ångström", "50%_off", "Jo/Slash", "ÅSA"]


def people() -> list[tuple[str, str | None]]:
    rows = []
    for i in range(120):
        domain = ("example.com", "mail.example.org", "ek.se")[i % 3]
        rows.append((f"user{i:03d}.{'xy' if i % 7 == 0 else 'ab'}@{domain}", NAMES[i % len(NAMES)]))
    return rows


async def seed(client: AppClient) -> list[tuple[int, str, str | None]]:
    list_id = await make_list(client, "news")
    now = utcnow()
    async with client.app.state.sessionmaker() as session:
        ids = []
        for email, name in people():
            sid = await session.scalar(
                insert(Subscriber)
                .values(email=email, email_key=email, name=name, attributes={}, status="active",
                        created_at=now, updated_at=now)
                .returning(Subscriber.id)
            )  # fmt: skip
            ids.append(sid)
        await session.execute(
            insert(Subscription),
            [
                {"subscriber_id": sid, "list_id": list_id, "status": "confirmed", "created_at": now}
                for sid in ids[::2]
            ],
        )
        await session.commit()
    return [(sid, e, n) for sid, (e, n) in zip(ids, people(), strict=True)]


async def walk(client: AppClient, limit: int = 7, **params: str) -> list[int]:
    """Every id the API gives for a search, following the cursor page by page."""
    seen: list[int] = []
    cursor = None
    while True:
        query = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/subscribers", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        seen += [s["id"] for s in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            return seen


# Not here: a non-ASCII capital in a name ("ÅSA" for "åsa"). SQLite's lower() folds ASCII
# only, PostgreSQL's the whole of Unicode; the needle itself is lowered in Python on both.
NEEDLES = ["a", "Ö", "xy", "%", "_", "/", "ab@", "EXAMPLE.ORG", "anna", "ngström", "50%_",
           "jo/s", "nobody-has-this", "user01", " ", "b@ek",
           # Across the address and the name, which PostgreSQL's index reads as one text
           # with a space between: not a match (app/models.search_text). Within a name: one.
           "com ann", "se bo", "org anna", "ann b"]  # fmt: skip


async def test_search_matches_a_substring_of_address_or_name_in_pages(client: AppClient) -> None:
    rows = await seed(client)
    for needle in NEEDLES:
        low = needle.strip().lower()
        expected = [sid for sid, e, n in rows if low in e or (n is not None and low in n.lower())]
        assert await walk(client, q=needle) == expected, needle
    # With a list: members only (every other subscriber), still in id order across pages.
    members = {sid for sid, _, _ in rows[::2]}
    expected = [sid for sid, e, n in rows if sid in members and "ab" in e]
    assert await walk(client, limit=5, q="ab", list="news") == expected


async def test_search_uses_the_trigram_index_on_postgres(client: AppClient) -> None:
    if client.app.state.settings.database_url.startswith("sqlite"):
        return  # no trigram index on SQLite: its LIKE is a scan, tested above for results
    await seed(client)
    # The statement the app itself sends for a search, caught on its way to the driver.
    sent: list[tuple[str, Any]] = []

    def catch(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM subscribers" in statement and "LIKE" in statement:
            sent.append((statement, parameters))

    engine = client.app.state.sessionmaker.kw["bind"]
    event.listen(engine.sync_engine, "before_cursor_execute", catch)
    try:
        assert (await client.get("/api/v1/subscribers", params={"q": "Ann"})).status_code == 200
        assert (await client.get("/api/v1/subscribers", params={"q": "an"})).status_code == 200
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", catch)
    assert len(sent) == 1, "a 2-character needle is not a LIKE (no trigram to use)"
    statement, parameters = sent[0]
    async with client.app.state.sessionmaker() as session:
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
        names = {r[0] for r in await raw.fetch("SELECT indexname FROM pg_indexes")}
        assert "ix_subscribers_search_trgm" in names
        assert not names & {"ix_subscribers_email_key_trgm", "ix_subscribers_name_trgm"}
        # Among 20,000 more rows that do not match, walking ids would read them all: the
        # planner takes the indexes if they serve the query's own expressions.
        await raw.execute(
            "INSERT INTO subscribers (email, email_key, name, attributes, status, created_at,"
            " updated_at) SELECT 'g' || n || '@bulk.test', 'g' || n || '@bulk.test',"
            " 'Bulk ' || n, '{}', 'active', now(), now() FROM generate_series(1, 20000) n;"
            " ANALYZE subscribers"
        )
        # New rows wait in the GIN index's pending list until a vacuum; priced as slow.
        await raw.execute("SELECT gin_clean_pending_list('ix_subscribers_search_trgm')")
        plan = "\n".join(r[0] for r in await raw.fetch("EXPLAIN " + statement, *parameters))
    assert "ix_subscribers_search_trgm" in plan, plan
