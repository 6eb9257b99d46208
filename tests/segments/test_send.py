"""Sending to lists ∩ segment through the real send path, to a real SMTP server on loopback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_subscriber
from tests.issues.test_send_flow import _until_finished
from tests.segments.fixtures import seed
from tests.smtp import SMTPServer

VIP_OR_OLD = {
    "any": [
        {"attribute": "vip", "op": "eq", "value": True},
        {"attribute": "age", "op": "gt", "value": 60},
    ]
}


async def test_issue_goes_to_the_lists_members_who_match_the_segment(
    app_factory: Callable[..., Any], smtpd: SMTPServer
) -> None:
    client: AppClient = await app_factory(embedded_worker=True)
    await seed(client)
    # Matches the segment and is confirmed on news, but blocklisted: never sent to.
    await make_subscriber(client, "zed@example.org", lists={"news": "confirmed"},
                          status="blocklisted", attributes={"vip": True})  # fmt: skip
    seg = (await client.post("/api/v1/segments", json={"name": "VIP", "rules": VIP_OR_OLD})).json()
    assert (await client.get(f"/api/v1/segments/{seg['id']}/count")).json() == {"count": 3}

    unknown = await client.post("/api/v1/issues", json={"subject": "x", "lists": ["news"],
                                "body": "hi", "segment": 999})  # fmt: skip
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "segment"]

    issue = await make_issue(client, lists=["news", "deals"], segment=seg["id"])
    assert issue["segment"] == seg["id"]
    whole = await make_issue(client, lists=["news", "deals"])
    assert whole["segment"] is None

    started = await client.post(f"/api/v1/issues/{issue['id']}/send")
    assert started.json() == {"status": "sending", "recipients": 2}, started.text
    # Fixed when the send started: changing the rule now changes no recipient.
    changed = await client.patch(
        f"/api/v1/segments/{seg['id']}", json={"rules": {"bounced": "any"}}
    )
    assert changed.status_code == 200
    stats = await _until_finished(client, issue["id"])
    assert stats["status"] == "sent" and stats["sent"] == 2, stats
    assert sorted(r.recipients[0] for r in smtpd.received) == ["ann@example.org", "dee@example.org"]
    log = (await client.get(f"/api/v1/issues/{issue['id']}/deliveries")).json()["items"]
    assert sorted(d["email"] for d in log) == ["ann@example.org", "dee@example.org"]
    later = await client.patch(f"/api/v1/issues/{issue['id']}", json={"segment": None})
    assert later.status_code == 409

    # The same lists without a segment: every confirmed, active member once.
    smtpd.reset()
    started = await client.post(f"/api/v1/issues/{whole['id']}/send")
    assert started.json() == {"status": "sending", "recipients": 3}
    assert (await _until_finished(client, whole["id"]))["sent"] == 3
    assert sorted(r.recipients[0] for r in smtpd.received) == [
        "ann@example.org", "bob@example.org", "dee@example.org"
    ]  # fmt: skip


async def test_segment_is_patched_counted_when_scheduled_and_keeps_its_issue(
    client: AppClient,
) -> None:
    await seed(client)
    seg = (await client.post("/api/v1/segments", json={"name": "V", "rules": VIP_OR_OLD})).json()
    issue = await make_issue(client, lists=["news"])
    patched = await client.patch(f"/api/v1/issues/{issue['id']}", json={"segment": seg["id"]})
    assert patched.status_code == 200 and patched.json()["segment"] == seg["id"]
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["segment"] == seg["id"]
    bad = await client.patch(f"/api/v1/issues/{issue['id']}", json={"segment": 12345})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "segment"]
    scheduled = await client.post(f"/api/v1/issues/{issue['id']}/send",
                                  json={"send_at": "2099-01-01T00:00:00Z"})  # fmt: skip
    assert scheduled.json() == {"status": "scheduled", "recipients": 1}, scheduled.text
    in_use = await client.delete(f"/api/v1/segments/{seg['id']}")
    assert in_use.status_code == 409 and f"issue(s) {issue['id']}" in in_use.json()["detail"]
    copy = (await client.post(f"/api/v1/issues/{issue['id']}/duplicate")).json()
    assert copy["segment"] == seg["id"]
