"""The console's issue report: opens, clicks, machines apart with reasons, links, timeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.conftest import AppClient
from tests.console.conftest import console_as, console_client  # noqa: F401 (fixtures)
from tests.engagement.helpers import (
    BROWSER_UA,
    click_url,
    flush,
    open_url,
    public,
    sent_issue,
)
from tests.issues.factory import set_issue


async def test_the_report_shows_people_and_machines_apart(
    client: AppClient,
    console_as: Callable[[str], Awaitable[Any]],  # noqa: F811 (the fixture imported above)
) -> None:
    sent = await sent_issue(client, {"ann@example.org": {}, "bob@example.org": {}})
    await set_issue(client, sent.issue_id, status="sent")
    reader = public(client, **{"User-Agent": BROWSER_UA})
    await reader.get(open_url(client, sent, "ann@example.org"))
    await reader.get(click_url(client, sent, "ann@example.org", 3))
    scanner = public(client, "40.94.1.1", **{"User-Agent": "Mimecast Scanner"})
    await scanner.get(click_url(client, sent, "bob@example.org", 2))
    await flush(client)
    viewer = await console_as("viewer")
    page = await viewer.get(f"/admin/issues/{sent.issue_id}/report")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'id="eng-title"' in html and "<svg" in html
    assert 'https://example.org/two</th><td class="num">1</td><td class="num">1</td>' in html
    cells = '<td class="num">0</td><td class="num">0</td><td class="num">1</td>'
    assert f"https://example.org/one</th>{cells}" in html
    assert '<th scope="row">user-agent</th>' in html  # the machine's reason
    assert "Download engagement as CSV" in html
    csv = await viewer.get(f"/api/v1/issues/{sent.issue_id}/engagement.csv")
    # The link, followed with the console's session (a viewer may read the API).
    assert csv.status_code == 200 and "https://example.org/two,1,1,0" in csv.text
    by_token = await client.get(f"/api/v1/issues/{sent.issue_id}/engagement.csv")
    assert by_token.status_code == 200 and "https://example.org/two,1,1,0" in by_token.text


async def test_the_follow_up_is_refused_where_no_event_names_anyone(
    console_as: Callable[[str], Awaitable[Any]],  # noqa: F811
    client: AppClient,
) -> None:
    sent = await sent_issue(client, {"ann@example.org": {}, "bob@example.org": {}})
    await set_issue(client, sent.issue_id, status="sent")
    editor = await console_as("editor")
    page = await editor.get(f"/admin/issues/{sent.issue_id}/report")
    # Aggregate mode (the default): no event names anyone, so no button.
    assert "/follow-up" not in page.text
    answer = await editor.post_form(f"/admin/issues/{sent.issue_id}/follow-up")
    assert answer.status_code == 303 and answer.headers["location"].endswith("/report")
