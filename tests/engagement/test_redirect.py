"""The redirect leads only to the issue's own links; bad tokens are 404; records come later."""

from __future__ import annotations

import string
from typing import Any

from sqlalchemy import delete

from app.engagement import endpoints, tokens
from app.models import Delivery, Issue
from tests.conftest import AppClient
from tests.engagement.helpers import (
    BROWSER_UA,
    click_url,
    count_events,
    flush,
    open_url,
    public,
    sent_issue,
)

ALPHABET = string.ascii_letters + string.digits + "-_"


async def _stats(client: AppClient, issue_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/issues/{issue_id}/engagement")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_click_redirects_to_the_issue_link_and_counts(client: AppClient) -> None:
    sent = await sent_issue(client)
    reader = public(client, **{"User-Agent": BROWSER_UA})
    [one, two, three] = sorted(i for i in sent.links if i >= 2)
    response = await reader.get(click_url(client, sent, "ann@example.org", two))
    assert response.status_code == 302
    assert response.headers["location"] == sent.links[two] == "https://example.org/two"
    assert "no-store" in response.headers["cache-control"]
    pixel = await reader.get(open_url(client, sent, "ann@example.org"))
    assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
    assert "no-store" in pixel.headers["cache-control"] and pixel.headers["expires"] == "0"
    await flush(client)
    stats = await _stats(client, sent.issue_id)
    assert (stats["opens"], stats["unique_opens"], stats["clicks"], stats["unique_clicks"]) == (
        1, 1, 1, 1
    )  # fmt: skip
    assert stats["machine_opens"] == stats["machine_clicks"] == 0
    table = (await client.get(f"/api/v1/issues/{sent.issue_id}/links")).json()["items"]
    assert [(t["url"], t["clicks"]) for t in table] == [
        ("https://example.org/one", 0), ("https://example.org/two", 1),
        ("https://example.org/three", 0),
    ]  # fmt: skip


async def test_a_flood_from_one_address_counts_one_person(client: AppClient) -> None:
    sent = await sent_issue(client)
    reader = public(client, **{"User-Agent": BROWSER_UA})
    for _ in range(50):
        assert (await reader.get(open_url(client, sent, "ann@example.org"))).status_code == 200
    await flush(client)
    stats = await _stats(client, sent.issue_id)
    assert stats["unique_opens"] == 1 and stats["opens"] == 1


async def test_every_altered_byte_is_a_404_never_a_redirect_elsewhere(client: AppClient) -> None:
    sent = await sent_issue(client)
    anon = public(client)
    good = click_url(client, sent, "ann@example.org", 2)[3:]
    allowed = set(sent.links.values())
    answers: dict[int, int] = {}
    for position in range(len(good)):
        for char in ALPHABET:
            if char == good[position]:
                continue
            bad = good[:position] + char + good[position + 1 :]
            response = await anon.get(f"/r/{bad}")
            location = response.headers.get("location")
            assert location is None or location in allowed, (bad, location)
            answers[response.status_code] = answers.get(response.status_code, 0) + 1
    assert answers == {404: len(good) * (len(ALPHABET) - 1)}
    # Cut short, grown, of the other purpose, for an index the issue lacks: 404 too.
    secret = client.app.state.settings.secret_key_value
    other_purpose = tokens.make(
        secret, "open", sent.issue_id, sent.deliveries["ann@example.org"], 2
    )
    no_such_link = tokens.make(secret, "click", sent.issue_id, 1, 99)
    for bad in (good[:-1], good + "A", good[:16], other_purpose, no_such_link, "x" * 32, "%00"):
        response = await anon.get(f"/r/{bad}")
        assert response.status_code == 404 and "location" not in response.headers
    assert (await anon.get(f"/o/{good}")).status_code == 404  # a link token is no pixel token
    await flush(client)
    assert (await _stats(client, sent.issue_id))["clicks"] == 0


async def test_deleted_issue_and_erased_reader_still_redirect_and_record_nothing_personal(
    client: AppClient,
) -> None:
    sent = await sent_issue(client, {"ann@example.org": {}, "bob@example.org": {}})
    reader = public(client, **{"User-Agent": BROWSER_UA})
    ann = click_url(client, sent, "ann@example.org", 3)
    bob = click_url(client, sent, "bob@example.org", 3)
    assert (await client.delete(f"/api/v1/subscribers/{sent.subscribers['bob@example.org']}")
            ).status_code == 204  # fmt: skip
    response = await reader.get(bob)
    assert response.status_code == 302 and response.headers["location"] == sent.links[3]
    await flush(client)
    assert await count_events(client) == 0
    async with client.app.state.sessionmaker() as s, s.begin():
        assert (await s.get(Delivery, sent.deliveries["bob@example.org"])).subscriber_id is None  # type: ignore[union-attr]
        await s.execute(delete(Delivery).where(Delivery.issue_id == sent.issue_id))
        await s.execute(delete(Issue).where(Issue.id == sent.issue_id))
    client.app.state.engagement_links.tables.clear()  # another process, that never cached it
    response = await reader.get(ann)
    assert response.status_code == 302 and response.headers["location"] == sent.links[3]
    await flush(client)
    assert await count_events(client) == 0


async def test_the_redirect_answers_while_the_database_is_away(
    app_factory: Any,
) -> None:
    client = await app_factory(tracking="individual")
    sent = await sent_issue(client)
    reader = public(client, **{"User-Agent": BROWSER_UA})
    url = click_url(client, sent, "ann@example.org", 2)
    assert (await reader.get(url)).status_code == 302  # the link table is now cached
    real = client.app.state.engagement_recorder.sessionmaker

    def away() -> Any:
        raise OSError("database unreachable")

    client.app.state.engagement_recorder.sessionmaker = away
    for _ in range(3):
        assert (await reader.get(url)).status_code == 302
    try:
        await flush(client)
    except OSError:
        pass
    assert len(client.app.state.engagement_recorder.pending) == 4  # kept for the next flush
    client.app.state.engagement_recorder.sessionmaker = real
    await flush(client)
    assert (await _stats(client, sent.issue_id))["clicks"] == 1  # repeats within 10 s: one
    assert await count_events(client) == 1


async def test_fast_path_and_routes_answer_alike(client: AppClient, make_settings: Any) -> None:
    """FastPath (ahead of the middleware) and the routes (an app without it) give the same
    status, Location and caching for good, altered, misdirected and malformed tokens."""
    from tests.conftest import start_client

    assert any(m.cls is endpoints.FastPath for m in client.app.user_middleware)
    routed, lifespan = await start_client(make_settings())
    try:
        sent = await sent_issue(client)
        good = click_url(client, sent, "ann@example.org", 2)
        pixel = open_url(client, sent, "ann@example.org")
        altered = good[:-1] + ("A" if good[-1] != "A" else "B")
        paths = [good, pixel, altered, "/r/" + pixel[3:], "/o/" + good[3:], good + "A", "/r/x"]
        for method in ("GET", "HEAD", "POST"):
            for path in paths:
                answers = []
                for app_client in (client, routed):
                    reader = public(app_client, **{"User-Agent": BROWSER_UA})
                    r = await reader.request(method, path)
                    answers.append((r.status_code, r.headers.get("location"),
                                    r.headers.get("cache-control"), r.headers.get("content-type"),
                                    r.content if method != "HEAD" else b""))  # fmt: skip
                assert answers[0] == answers[1], (method, path, answers)
        await flush(client)
        await flush(routed)
        stats = await _stats(client, sent.issue_id)
        # Each app is a process of its own: each counts its hits, but a person once.
        assert (stats["clicks"], stats["opens"]) == (2, 2)
        assert (stats["unique_clicks"], stats["unique_opens"]) == (1, 1)
    finally:
        await routed.aclose()
        await lifespan.__aexit__(None, None, None)
