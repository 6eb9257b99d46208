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


async def _private_list(client: AppClient, slug: str) -> None:
    from sqlalchemy import update

    from app.models import MailingList

    await make_list(client, slug)
    async with client.app.state.sessionmaker() as session:
        await session.execute(
            update(MailingList).where(MailingList.slug == slug).values(public=False)
        )
        await session.commit()


async def test_in_archive_defaults_from_the_lists_and_private_issues_stay_out(
    client: AppClient, anon: AppClient
) -> None:
    await make_list(client, "news")
    await _private_list(client, "board")
    public = await make_issue(client, subject="For everyone", lists=["news"])
    private = await make_issue(client, subject="Board minutes", lists=["news", "board"])
    asked = await make_issue(client, subject="Board, published", lists=["board"], in_archive=True)
    assert (public["in_archive"], private["in_archive"], asked["in_archive"]) == (True, False, True)
    for issue in (public, private, asked):
        await set_issue(client, issue["id"], status="sent")
    listing = (await anon.get("/archive")).text
    assert "For everyone" in listing and "Board, published" in listing
    assert "Board minutes" not in listing
    assert (await anon.get(f"/archive/{private['id']}")).status_code == 404
    assert (await anon.get(f"/archive/{asked['id']}")).status_code == 200

    # Changing the lists of a draft moves the default with them.
    draft = await make_issue(client, subject="Draft", lists=["news"])
    moved = await client.patch(f"/api/v1/issues/{draft['id']}", json={"lists": ["board"]})
    assert moved.json()["in_archive"] is False


async def test_a_sent_issue_can_be_withdrawn_from_the_archive(
    client: AppClient, anon: AppClient
) -> None:
    await make_list(client, "news")
    issue = await make_issue(client, subject="Oops, sent to the wrong people")
    await set_issue(client, issue["id"], status="sent")
    url = f"/api/v1/issues/{issue['id']}"
    assert (await anon.get(f"/archive/{issue['id']}")).status_code == 200  # cached now
    withdrawn = await client.patch(url, json={"in_archive": False})
    assert withdrawn.status_code == 200 and withdrawn.json()["in_archive"] is False
    assert (await anon.get(f"/archive/{issue['id']}")).status_code == 404
    assert "Oops" not in (await anon.get("/archive")).text
    # Only in_archive may change after sending.
    assert (await client.patch(url, json={"in_archive": True, "subject": "x"})).status_code == 409
    assert (await client.patch(url, json={"in_archive": None})).status_code == 422


async def test_the_web_version_says_how_to_subscribe_and_leads_back(
    client: AppClient, anon: AppClient
) -> None:
    await make_list(client, "news", "Weekly News")
    issue = await make_issue(client, subject="Issue nine")
    await set_issue(client, issue["id"], status="sent")
    page = (await anon.get(f"/archive/{issue['id']}")).text
    assert "Unsubscribe" not in page and "Manage your preferences" not in page
    assert "subscribe here" in page and 'href="http://tidings.test/subscribe"' in page
    assert 'href="/archive"' in page and 'href="/subscribe"' in page  # the top navigation
    # A subscriber's own copy still has both personal links.
    email = (await client.get(f"/api/v1/issues/{issue['id']}/preview")).text
    assert "Unsubscribe" in email and "Manage your preferences" in email


async def test_duplicate_makes_a_new_draft_with_the_same_content(client: AppClient) -> None:
    await make_list(client, "news")
    await _private_list(client, "board")
    source = await make_issue(
        client, subject="Hello {{ subscriber.name }}", preheader="pre", lists=["board", "news"],
        **{"from": "Ed <ed@example.org>"}, in_archive=True,
    )  # fmt: skip
    await set_issue(client, source["id"], status="sent")
    copy = await client.post(f"/api/v1/issues/{source['id']}/duplicate")
    assert copy.status_code == 201, copy.text
    new = copy.json()
    assert new["id"] != source["id"] and new["status"] == "draft" and new["recipients"] == 0
    same = ("subject", "preheader", "from", "template", "format", "body", "in_archive")
    assert {k: new[k] for k in same} == {k: source[k] for k in same}
    assert sorted(new["lists"]) == ["board", "news"]
    assert new["started_at"] is None and new["send_at"] is None
    assert (await client.post("/api/v1/issues/99999/duplicate")).status_code == 404
