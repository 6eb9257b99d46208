"""The segment pages over HTTP: the builder without JavaScript, save, count, delete, refusals."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable

from sqlalchemy import update

from app.models import Issue
from tests.conftest import AppClient
from tests.console.conftest import ConsoleClient
from tests.issues.factory import make_issue
from tests.segments.fixtures import seed

SignIn = Callable[[str], Awaitable[ConsoleClient]]
NEWS = {"all": [{"list": "news", "status": "confirmed"}]}


def _count_of(page: str) -> int | None:
    match = re.search(r"(\d+) (?:person matches|people match) this rule now", page)
    return int(match.group(1)) if match else None


async def test_editor_builds_counts_saves_and_deletes_a_segment(
    client: AppClient, console_as: SignIn
) -> None:
    await seed(client)
    editor = await console_as("editor")
    csrf = editor.csrf
    new = await editor.get("/admin/segments/new")
    assert new.status_code == 200 and 'id="f-rules"' in new.text
    assert '<script src="/admin/static/segments.js"></script>' in new.text

    # The Count button posts the form: the page comes back as filled in, with the count.
    counted = await editor.post("/admin/segments/count", data={"csrf_token": csrf,
                                "name": "News <b>", "rules": json.dumps(NEWS)})  # fmt: skip
    assert counted.status_code == 200 and _count_of(counted.text) == 2
    assert "News &lt;b&gt;" in counted.text
    # The builder's script asks the same route for JSON.
    answer = await editor.post("/admin/segments/count", json={"rules": NEWS},
                               headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert answer.status_code == 200 and answer.json() == {"count": 2}
    bad_rule = {"all": [{"list": "news", "status": "x"}]}
    located = await editor.post("/admin/segments/count", headers={"X-CSRF-Token": csrf},
                                json={"rules": bad_rule})  # fmt: skip
    assert located.status_code == 422
    assert located.json()["detail"][0]["loc"] == ["body", "rules", "all", 0, "status"]

    saved = await editor.post("/admin/segments", data={"csrf_token": csrf, "name": "News <b>",
                              "rules": json.dumps(NEWS)})  # fmt: skip
    assert saved.status_code == 303, saved.text
    seg_id = int(saved.headers["location"].rsplit("/", 1)[1])
    page = await editor.get(saved.headers["location"])
    assert "saved" in page.text and _count_of(page.text) == 2
    index = await editor.get("/admin/segments")
    assert "News &lt;b&gt;" in index.text and '<td class="num">2</td>' in index.text

    changed = await editor.post(f"/admin/segments/{seg_id}", data={"csrf_token": csrf,
                                "name": "Bounced", "rules": '{"bounced": "any"}'})  # fmt: skip
    assert changed.status_code == 303
    api = (await client.get(f"/api/v1/segments/{seg_id}")).json()
    assert api["name"] == "Bounced" and api["rules"] == {"bounced": "any"}

    issue = await make_issue(client)
    async with client.app.state.sessionmaker() as session:
        await session.execute(update(Issue).values(segment_id=seg_id))
        await session.commit()
    kept = await editor.post(f"/admin/segments/{seg_id}/delete", data={"csrf_token": csrf})
    assert kept.status_code == 303 and kept.headers["location"] == f"/admin/segments/{seg_id}"
    said = await editor.get(kept.headers["location"])
    assert f"unfinished issue(s) {issue['id']}" in said.text
    async with client.app.state.sessionmaker() as session:
        await session.execute(update(Issue).values(status="cancelled"))
        await session.commit()
    gone = await editor.post(f"/admin/segments/{seg_id}/delete", data={"csrf_token": csrf})
    assert gone.status_code == 303 and gone.headers["location"] == "/admin/segments"
    assert (await client.get(f"/api/v1/segments/{seg_id}")).status_code == 404


async def test_bad_rules_come_back_named_and_nothing_is_saved(
    client: AppClient, console_as: SignIn
) -> None:
    await seed(client)
    editor = await console_as("editor")
    csrf = editor.csrf
    cases = [
        ('{"all": [', "rules: the rule is not JSON"),
        ('{"all": [{"list": "nope", "status": "confirmed"}]}',
         "rules › all › 0 › list: unknown list: nope"),
        ('{"any": [{"engaged": "opened", "issue": "any", "within_days": 0}]}',
         "rules › any › 0 › within_days: within_days is a whole number of days, 1-36500"),
    ]  # fmt: skip
    for text, message in cases:
        for url in ("/admin/segments", "/admin/segments/count"):
            bad = await editor.post(url, data={"csrf_token": csrf, "name": "S", "rules": text})
            assert bad.status_code == 422, bad.text
            shown = html.unescape(bad.text)
            assert message in shown and f">{text}</textarea>" in shown
    nameless = await editor.post("/admin/segments", data={"csrf_token": csrf, "name": " ",
                                 "rules": json.dumps(NEWS)})  # fmt: skip
    assert nameless.status_code == 422 and "needs a name" in nameless.text
    assert (await client.get("/api/v1/segments")).json()["items"] == []


async def test_viewer_reads_and_changes_nothing(client: AppClient, console_as: SignIn) -> None:
    await seed(client)
    made = await client.post("/api/v1/segments", json={"name": "News", "rules": NEWS})
    seg_id = made.json()["id"]
    viewer = await console_as("viewer")
    csrf = viewer.csrf
    index = await viewer.get("/admin/segments")
    assert index.status_code == 200 and "News" in index.text and "Delete" not in index.text
    page = await viewer.get(f"/admin/segments/{seg_id}")
    assert _count_of(page.text) == 2 and "Save segment" not in page.text
    for url in ("/admin/segments", f"/admin/segments/{seg_id}", f"/admin/segments/{seg_id}/delete"):
        refused = await viewer.post(url, data={"csrf_token": csrf, "name": "X", "rules": "{}"})
        assert refused.status_code == 403
    assert (await client.get(f"/api/v1/segments/{seg_id}")).json()["name"] == "News"


async def test_writes_need_the_csrf_token(client: AppClient, console_as: SignIn) -> None:
    editor = await console_as("editor")
    refused = await editor.post("/admin/segments", data={"name": "S", "rules": json.dumps(NEWS)})
    assert refused.status_code == 403
    assert (await editor.post("/admin/segments/count", json={"rules": NEWS})).status_code == 403
