"""track_opens/track_clicks per issue: defaults from TIDINGS_TRACKING, changed like any field."""

from __future__ import annotations

from typing import Any

from tests.engagement.helpers import sent_issue
from tests.issues.factory import make_issue, make_list


async def test_flags_default_on_and_follow_the_issue(app_factory: Any) -> None:
    client = await app_factory()
    await make_list(client, "news")
    issue = await make_issue(client, track_clicks=False)
    assert (issue["track_opens"], issue["track_clicks"]) == (True, False)
    patched = await client.patch(f"/api/v1/issues/{issue['id']}", json={"track_opens": False})
    assert (patched.json()["track_opens"], patched.json()["track_clicks"]) == (False, False)
    refused = await client.patch(f"/api/v1/issues/{issue['id']}", json={"track_opens": None})
    assert refused.status_code == 422
    copy = (await client.post(f"/api/v1/issues/{issue['id']}/duplicate")).json()
    assert (copy["track_opens"], copy["track_clicks"]) == (False, False)


async def test_tracking_off_leaves_links_and_flags_alone(app_factory: Any) -> None:
    client = await app_factory(tracking="off")
    sent = await sent_issue(client)
    assert sent.links == {}  # nothing compiled with tracking: no link table
    shown = (await client.get(f"/api/v1/issues/{sent.issue_id}")).json()
    assert (shown["track_opens"], shown["track_clicks"]) == (False, False)
