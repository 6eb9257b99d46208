"""The public archive: sent issues only, and no one's personal data."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list, make_subscriber, set_issue

BODY = (
    "# Hello {{ subscriber.name }}\n\nYour code: {{ subscriber.attributes.code }}."
    " Mail {{ subscriber.email }}.\n\n[Stop]({{ unsubscribe_url }}) ·"
    " [Web version]({{ archive_url }})\n\nThe secret of issue seventeen is *kindness*.\n"
)


async def test_archive_shows_sent_issues_only(client: AppClient, anon: AppClient) -> None:
    await make_list(client, "news", "Weekly News")
    await make_subscriber(
        client, "zoe@example.org", name="Zoë Private", lists={"news": "confirmed"},
        attributes={"code": "ZX-981"},
    )  # fmt: skip
    sent = await make_issue(client, subject="Issue seventeen", body=BODY)
    draft = await make_issue(client, subject="Unfinished draft")
    sending = await make_issue(client, subject="Going out now")
    cancelled = await make_issue(client, subject="Never mind")
    await client.post(f"/api/v1/issues/{sending['id']}/send")
    await client.post(f"/api/v1/issues/{cancelled['id']}/cancel")
    started = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    await set_issue(client, sent["id"], status="sent", started_at=started, finished_at=started)

    listing = await anon.get("/archive")
    assert listing.status_code == 200
    assert listing.headers["content-type"].startswith("text/html")
    assert "Issue seventeen" in listing.text and f'href="/archive/{sent["id"]}"' in listing.text
    assert "3 November 2026" in listing.text
    for hidden in ("Unfinished draft", "Going out now", "Never mind"):
        assert hidden not in listing.text

    page = await anon.get(f"/archive/{sent['id']}")
    assert page.status_code == 200
    assert "kindness" in page.text
    for private in ("Zoë", "Private", "zoe@example.org", "ZX-981", "/u/", "/preferences/"):
        assert private not in page.text
    assert "script-src 'none'" in page.headers["content-security-policy"]

    for other in (draft, sending, cancelled):
        response = await anon.get(f"/archive/{other['id']}")
        assert response.status_code == 404
        assert other["subject"] not in response.text
    assert (await anon.get("/archive/999999")).status_code == 404


async def test_empty_archive_and_paging(client: AppClient, anon: AppClient) -> None:
    empty = await anon.get("/archive")
    assert empty.status_code == 200 and "No issue has been sent yet" in empty.text
    await make_list(client, "news")
    ids = []
    for n in range(52):  # one more than fits a page of 50
        issue = await make_issue(client, subject=f"Edition number {n:02d}")
        await set_issue(client, issue["id"], status="sent")
        ids.append(issue["id"])
    first = (await anon.get("/archive")).text
    assert "Edition number 51" in first and "Edition number 01" not in first
    assert f"/archive?before={ids[2]}" in first
    older = (await anon.get("/archive", params={"before": ids[2]})).text
    assert "Edition number 01" in older and "Edition number 00" in older
    assert "Edition number 02" not in older


async def test_archive_lists_a_personalised_subject_as_no_one_in_particular(
    client: AppClient, anon: AppClient
) -> None:
    await make_list(client, "news", "Weekly News")
    issue = await make_issue(client, subject="News for {{ subscriber.name or 'you' }}")
    started = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    await set_issue(client, issue["id"], status="sent", started_at=started, finished_at=started)
    listing = await anon.get("/archive")
    assert "News for you" in listing.text
    assert "{{" not in listing.text
