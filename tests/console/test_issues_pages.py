"""Console issue pages over HTTP: list, editor, version-checked saves, checks, preview,
test sends with a result per address, the send confirmation, schedule, moves and report.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.console.conftest import csrf_of
from tests.issues.factory import BODY, make_issue, make_list, make_subscriber, set_issue

pytestmark = pytest.mark.asyncio
VERSION = re.compile(r'name="version" value="([^"]*)"')


def form_of(issue: dict[str, Any], **changes: Any) -> dict[str, Any]:
    values = {"subject": issue["subject"], "preheader": "", "from": "", "lists": issue["lists"],
              "template": "newsletter", "format": "markdown", "body": issue["body"]}  # fmt: skip
    return values | changes


async def editor(c: Any, issue_id: int) -> tuple[str, str]:
    page = await c.get(f"/admin/issues/{issue_id}")
    assert page.status_code == 200, page.text
    c.csrf = csrf_of(page.text)
    return page.text, VERSION.search(page.text)[1]  # type: ignore[index]


async def test_list_shows_issues_and_duplicate_makes_a_draft(client: Any, console_as: Any) -> None:
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"], subject="November <news>")
    c = await console_as("editor")
    index = await c.get("/admin/issues")
    assert "November &lt;news&gt;" in index.text and "Duplicate" in index.text
    answer = await c.post_form(f"/admin/issues/{issue['id']}/duplicate")
    assert answer.status_code == 303
    copy_id = int(answer.headers["location"].rsplit("/", 1)[1])
    copy = (await client.get(f"/api/v1/issues/{copy_id}")).json()
    assert (copy["status"], copy["body"], copy["lists"]) == ("draft", issue["body"], ["weekly"])


async def test_two_editors_never_silently_overwrite_each_other(
    client: Any, console_as: Any
) -> None:
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"])
    ann, bob = await console_as("editor"), await console_as("editor")
    _, ann_version = await editor(ann, issue["id"])
    _, bob_version = await editor(bob, issue["id"])
    saved = await ann.post_form(
        f"/admin/issues/{issue['id']}", form_of(issue, body="Ann's text", version=ann_version)
    )
    assert saved.status_code == 303
    clash = await bob.post_form(
        f"/admin/issues/{issue['id']}", form_of(issue, body="Bob's text", version=bob_version)
    )
    assert clash.status_code == 409
    assert "someone else saved this issue" in clash.text
    assert "Bob&#39;s text" in clash.text  # his text is still in the form
    auto = await bob.post(
        f"/admin/issues/{issue['id']}/autosave",
        data=form_of(issue, body="Bob again", version=bob_version),
        headers={"X-CSRF-Token": bob.csrf},
    )
    assert auto.status_code == 409
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["body"] == "Ann's text"
    # Autosave with the current version wins and hands back the next one.
    _, fresh = await editor(bob, issue["id"])
    auto = await bob.post(
        f"/admin/issues/{issue['id']}/autosave",
        data=form_of(issue, body="Bob, after reading Ann", version=fresh),
        headers={"X-CSRF-Token": bob.csrf},
    )
    assert auto.status_code == 200 and auto.json()["version"] != fresh


async def test_template_errors_come_back_with_their_line(client: Any, console_as: Any) -> None:
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"])
    c = await console_as("editor")
    _, version = await editor(c, issue["id"])
    bad = form_of(issue, body="Hello\n\n{% if %}\n", version=version)
    found = (await c.post("/admin/issues/check", data=bad, headers={"X-CSRF-Token": c.csrf})).json()
    assert found["problems"][0]["field"] == "body" and found["problems"][0]["line"] == 3
    internals = form_of(issue, body="{{ subscriber.__class__ }}")
    found = (
        await c.post("/admin/issues/check", data=internals, headers={"X-CSRF-Token": c.csrf})
    ).json()
    assert found["problems"], "reaching for internals must be refused"
    auto = await c.post(f"/admin/issues/{issue['id']}/autosave", data=bad,
                        headers={"X-CSRF-Token": c.csrf})  # fmt: skip
    assert auto.status_code == 422 and auto.json()["problems"][0]["line"] == 3
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["body"] == issue["body"]


async def test_preview_is_sandboxed_and_reports_size_and_warnings(
    client: Any, console_as: Any
) -> None:
    await make_list(client, "weekly")
    body = ('Hi {{ subscriber.name | default("friend") }}\n\n<img src="https://example.org/a.png">'
            '\n\n[plain](http://example.org/x) <script>alert(1)</script>')  # fmt: skip
    issue = await make_issue(client, lists=["weekly"], body=body)
    c = await console_as("viewer")
    text, _ = await editor(c, issue["id"])
    assert 'sandbox=""' in text
    data = (await c.get(f"/admin/issues/{issue['id']}/preview.json")).json()
    assert "Hi Alex" in data["html"] and "<script" not in data["html"]
    assert any("alt" in w for w in data["warnings"]) and any("https" in w for w in data["warnings"])
    # The author's http link is named; our own links are one warning about the public URL.
    assert "A link is not https: http://example.org/x" in data["warnings"]
    own = [w for w in data["warnings"] if "/test-message/" in w or "/archive/" in w]
    assert own == [], own
    assert (
        sum("The public URL http://tidings.test is not https" in w for w in data["warnings"]) == 1
    )
    assert data["clip_bytes"] == 102 * 1024 and data["bytes"] == len(data["html"].encode())
    nameless = (await c.get(f"/admin/issues/{issue['id']}/preview.json?sample=nameless")).json()
    assert "Hi friend" in nameless["html"]
    sub = await make_subscriber(
        client, "zoe@example.org", name="Zoë", lists={"weekly": "confirmed"}
    )
    chosen = (await c.get(f"/admin/issues/{issue['id']}/preview.json?subscriber_id={sub}")).json()
    assert "Hi Zoë" in chosen["html"]
    frame = await c.get(f"/console-preview/issues/{issue['id']}")
    csp = frame.headers["content-security-policy"]
    assert csp.startswith("sandbox") and "script-src" not in csp and "default-src 'none'" in csp
    assert "x-frame-options" not in frame.headers
    text_part = await c.get(f"/admin/issues/{issue['id']}/text")
    assert "Hi Alex" in text_part.text and "<" not in text_part.text.split("Hi Alex")[0][-5:]
    anonymous = await c.__class__(transport=c._transport, base_url=str(c.base_url)).get(
        f"/console-preview/issues/{issue['id']}"
    )
    assert anonymous.status_code == 303


async def test_test_send_shows_each_attempt(client: Any, console_as: Any, smtpd: Any) -> None:
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"])
    c = await console_as("editor")
    await editor(c, issue["id"])
    smtpd.reply = lambda r: "550 5.1.1 no such mailbox" if "gone@" in r.recipients[0] else "250 OK"
    answer = await c.post_form(
        f"/admin/issues/{issue['id']}/test",
        {"test_emails": "me@example.org, not-an-address gone@example.org"},
    )
    assert answer.status_code == 200
    assert re.search(r"me@example.org</strong>: <span class=\"ok\">sent", answer.text)
    assert re.search(r"not-an-address</strong>: <span class=\"error\">not sent", answer.text)
    assert re.search(r"gone@example.org</strong>: <span class=\"error\">refused", answer.text)
    assert [m.recipients for m in smtpd.received] == [["me@example.org"]]
    assert smtpd.received[0].message["Subject"] == issue["subject"]


async def test_send_confirmation_then_once(client: Any, console_as: Any) -> None:
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"])
    c = await console_as("editor")
    empty = await c.get(f"/admin/issues/{issue['id']}/send")
    assert "Nobody would receive this issue" in empty.text and "now</button>" not in empty.text
    c.csrf = csrf_of(empty.text)
    refused = await c.post_form(f"/admin/issues/{issue['id']}/send")
    assert refused.status_code == 303
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["status"] == "draft"
    for n in range(3):
        await make_subscriber(client, f"r{n}@example.org", lists={"weekly": "confirmed"})
    confirm = await c.get(f"/admin/issues/{issue['id']}/send")
    assert "<strong>3</strong>" in confirm.text and "Weekly" in confirm.text
    assert "DKIM is not configured" in confirm.text and "Bounce processing" in confirm.text
    first = await c.post_form(f"/admin/issues/{issue['id']}/send")
    second = await c.post_form(f"/admin/issues/{issue['id']}/send")
    assert first.status_code == second.status_code == 303
    stats = (await client.get(f"/api/v1/issues/{issue['id']}/stats")).json()
    assert (stats["status"], stats["recipients"]) == ("sending", 3)
    report = await c.get(second.headers["location"])
    assert "already on its way" in report.text
    progress = (await c.get(f"/admin/issues/{issue['id']}/progress.json")).json()
    assert (progress["status"], progress["recipients"], progress["queued"]) == ("sending", 3, 3)
    paused = await c.post_form(f"/admin/issues/{issue['id']}/pause")
    assert paused.status_code == 303
    assert (await c.get(f"/admin/issues/{issue['id']}/progress.json")).json()["status"] == "paused"
    assert (await c.post_form(f"/admin/issues/{issue['id']}/resume")).status_code == 303
    again = await c.post_form(f"/admin/issues/{issue['id']}/resume")
    assert "cannot resume" in (await c.get(again.headers["location"])).text
    csv = await c.get(f"/admin/issues/{issue['id']}/deliveries.csv")
    assert csv.text.splitlines()[0] == "email,status,attempts,last_error,message_id,sent_at"
    assert len(csv.text.splitlines()) == 4


@pytest.mark.parametrize(
    ("day", "clock", "zone", "reason"),
    [
        ("2020-01-01", "09:00", "Europe/London", "in the past"),
        ("2031-03-30", "01:30", "Europe/London", "does not exist"),
        ("2031-03-30", "09:00", "Mars/Olympus", "unknown time zone"),
        ("2031-13-40", "09:00", "UTC", "give a date"),
    ],
)
async def test_bad_schedules_are_refused_with_the_reason(
    client: Any, console_as: Any, day: str, clock: str, zone: str, reason: str
) -> None:
    await make_list(client, "weekly")
    await make_subscriber(client, "r@example.org", lists={"weekly": "confirmed"})
    issue = await make_issue(client, lists=["weekly"])
    c = await console_as("editor")
    c.csrf = csrf_of((await c.get(f"/admin/issues/{issue['id']}/send")).text)
    when = {"send_date": day, "send_time": clock, "timezone": zone}
    answer = await c.post_form(f"/admin/issues/{issue['id']}/schedule", when)
    assert answer.status_code == 422 and reason in answer.text
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["status"] == "draft"


async def test_schedule_in_the_persons_time_zone(client: Any, console_as: Any) -> None:
    await make_list(client, "weekly")
    await make_subscriber(client, "r@example.org", lists={"weekly": "confirmed"})
    issue = await make_issue(client, lists=["weekly"])
    c = await console_as("editor")
    c.csrf = csrf_of((await c.get(f"/admin/issues/{issue['id']}/send")).text)
    day = (datetime.now(UTC) + timedelta(days=40)).date().isoformat()
    answer = await c.post_form(f"/admin/issues/{issue['id']}/schedule",
                               {"send_date": day, "send_time": "09:30",
                                "timezone": "America/New_York"})  # fmt: skip
    assert answer.status_code == 303
    stored = (await client.get(f"/api/v1/issues/{issue['id']}")).json()
    at = datetime.fromisoformat(stored["send_at"])
    assert stored["status"] == "scheduled" and at.minute == 30 and at.hour in (13, 14)


async def test_archive_toggle_and_roles(client: Any, console_as: Any) -> None:
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"])
    await set_issue(client, issue["id"], status="sent")
    viewer = await console_as("viewer")
    report = await viewer.get(f"/admin/issues/{issue['id']}/report")
    assert report.status_code == 200 and "Save archive choice" not in report.text
    viewer.csrf = csrf_of(report.text)
    targets = [(f"/admin/issues/{issue['id']}/archive", {}),
               (f"/admin/issues/{issue['id']}/duplicate", {}),
               ("/admin/issues", {"subject": "x", "lists": "weekly", "body": BODY})]  # fmt: skip
    for url, data in targets:
        assert (await viewer.post_form(url, data)).status_code == 403
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["in_archive"] is True
    c = await console_as("editor")
    c.csrf = csrf_of((await c.get(f"/admin/issues/{issue['id']}/report")).text)
    assert (await c.post_form(f"/admin/issues/{issue['id']}/archive")).status_code == 303
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["in_archive"] is False
