"""Kept list counts equal real counts after every kind of membership write; fresh statistics."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from app.subscribers import lists as list_service
from tests.conftest import AppClient
from tests.smtp import SMTPServer
from tests.subscribers.helpers import add, confirm_token, make_list

CSV = {"content-type": "text/csv"}


async def real_counts(client: AppClient) -> dict[str, dict[str, int]]:
    """Counted row by row, the way list_counts did before counts were kept."""
    async with client.app.state.sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT l.slug, m.status, count(*) FROM subscriptions m"
                " JOIN lists l ON l.id = m.list_id GROUP BY l.slug, m.status"
            )
        )
        out: dict[str, dict[str, int]] = {}
        for slug, status, n in rows:
            out.setdefault(slug, {"confirmed": 0, "pending": 0, "unsubscribed": 0})[status] = n
        return out


async def kept_counts(client: AppClient) -> dict[str, dict[str, int]]:
    lists = (await client.get("/api/v1/lists", params={"limit": 100})).json()["items"]
    return {m["slug"]: m["counts"] for m in lists if any(m["counts"].values())}


async def test_kept_counts_follow_every_write_path(
    client: AppClient, anon: AppClient, smtpd: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_list(client, "news")
    await make_list(client, "other", double_opt_in=False)
    await make_list(client, "doomed")
    a = await add(client, "a@example.com", lists=["news", "doomed"])
    b = await add(client, "b@example.com", lists=["news"], subscription_status="pending")
    await add(client, "c@example.com", lists=["other", "doomed"])
    # Import: new people, an existing pending member confirmed, an existing one joining.
    body = "email,name\nb@example.com,B\nc@example.com,C\n" + "".join(
        f"i{n}@example.com,I{n}\n" for n in range(30)
    )
    imported = await client.post(
        "/api/v1/subscribers/import", params={"list": "news"}, content=body, headers=CSV
    )
    assert imported.status_code == 200, imported.text
    # Public sign-up (pending) and its confirmation.
    signup = {"email": "p@example.com", "lists": ["news"]}
    assert (await anon.post("/api/v1/subscribe", json=signup)).status_code == 202
    assert (
        await anon.post(f"/subscribe/confirm/{confirm_token(smtpd, 'p@example.com')}")
    ).is_success
    # Memberships changed by an admin, one person erased, one list deleted.
    patched = await client.patch(
        f"/api/v1/subscribers/{b['id']}",
        json={"lists": [{"slug": "news", "status": "unsubscribed"}, {"slug": "other",
                                                                     "status": "confirmed"}]},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    assert (await client.delete(f"/api/v1/subscribers/{a['id']}")).status_code in (200, 204)
    assert (await client.delete("/api/v1/lists/doomed")).status_code in (200, 204)
    # A write no service makes (a bulk unsubscribe in SQL, as a bounce sweep might).
    async with client.app.state.sessionmaker() as session:
        await session.execute(
            text(
                "UPDATE subscriptions SET status = 'unsubscribed' WHERE subscriber_id IN"
                " (SELECT id FROM subscribers WHERE email_key LIKE 'i1%')"
            )
        )
        await session.commit()

    expected = await real_counts(client)
    assert expected["news"]["unsubscribed"] == 12 and "doomed" not in expected
    assert await kept_counts(client) == expected
    # Folding many deltas into one row per (list, status) changes no count.
    monkeypatch.setattr(list_service, "FOLD_AT", 0)
    assert await kept_counts(client) == expected
    monkeypatch.undo()
    assert await kept_counts(client) == expected
    async with client.app.state.sessionmaker() as session:
        rows = await session.scalar(
            text("SELECT count(*) FROM list_member_counts WHERE list_id IN (SELECT id FROM lists)")
        )
    if client.app.state.settings.database_url.startswith("postgresql"):
        assert rows <= 6, rows  # folded: at most one per list and status (2 lists)


async def last_analyze(client: AppClient) -> dict[str, Any]:
    async with client.app.state.sessionmaker() as session:
        await session.execute(text("SELECT pg_stat_clear_snapshot()"))
        rows = await session.execute(
            text(
                "SELECT relname, last_analyze FROM pg_stat_user_tables"
                " WHERE relname IN ('subscribers', 'subscriptions')"
            )
        )
        return dict(rows.all())


async def test_an_import_into_a_fresh_table_refreshes_the_statistics(client: AppClient) -> None:
    if client.app.state.settings.database_url.startswith("sqlite"):
        return  # SQLite's planner keeps no row statistics of this kind
    await make_list(client, "news")
    before = await last_analyze(client)
    body = "email\n" + "".join(f"s{n}@example.com\n" for n in range(50))
    imported = await client.post(
        "/api/v1/subscribers/import", params={"list": "news"}, content=body, headers=CSV
    )
    assert imported.status_code == 200 and imported.json()["created"] == 50
    after = await last_analyze(client)
    for name in ("subscribers", "subscriptions"):
        assert after[name] is not None and (before[name] is None or after[name] > before[name])
    async with client.app.state.sessionmaker() as session:
        estimate = await session.scalar(
            text("SELECT reltuples FROM pg_class WHERE relname = 'subscribers'")
        )
    assert estimate == 50
