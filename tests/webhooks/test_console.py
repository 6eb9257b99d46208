"""The console's webhook pages: register (secret once), log with responses, replay, the
disabled warning with its reason; a viewer reads and changes nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import update

from app.webhooks import addresses
from app.webhooks.models import Webhook
from tests.webhooks.helpers import eventually, running_sender
from tests.webhooks.receiver import serve


async def test_editor_registers_reads_the_log_replays_and_sees_the_warning(
    console_as: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {"now": ["93.184.216.34"]}

    async def resolve(host: str, port: int) -> list[str]:
        return answers["now"]

    monkeypatch.setattr(addresses, "resolve", resolve)
    editor = await console_as("editor")
    assert 'href="/admin/webhooks"' in (await editor.get("/admin")).text
    refused = await editor.post_form(
        "/admin/webhooks", {"url": "http://10.0.0.1/", "events": "issue.started"}
    )
    assert refused.status_code == 422 and "private address" in refused.text
    with serve(plan=[500]) as receiver:
        url = f"http://hooks.example:{receiver.port}/in?<b>"
        r = await editor.post_form("/admin/webhooks", {"url": url, "events": "subscriber.created"})
        assert r.status_code == 201, r.text
        secret = re.search(r'value="(whsec_[^"]+)"', r.text)
        assert secret
        assert "<b>" not in r.text  # the URL is escaped
        (hook_id,) = re.findall(r'href="/admin/webhooks/(\d+)"', r.text)
        assert secret.group(1) not in (await editor.get(f"/admin/webhooks/{hook_id}")).text
        assert (await editor.post_form(f"/admin/webhooks/{hook_id}/test")).status_code == 303
        answers["now"] = ["127.0.0.1"]  # the receiver, reached only because private is allowed
        async with running_sender(editor, webhook_allow_private=True):
            await eventually(lambda: len(receiver.calls) == 2)
        page = (await editor.get(f"/admin/webhooks/{hook_id}")).text
        assert "HTTP 500" in page and "HTTP 200" in page and "thanks" in page
        delivery = re.search(rf"/admin/webhooks/{hook_id}/deliveries/(\d+)/replay", page)
        assert delivery
        r = await editor.post_form(
            f"/admin/webhooks/{hook_id}/deliveries/{delivery.group(1)}/replay"
        )
        assert r.status_code == 303
        assert "replay of" in (await editor.get(f"/admin/webhooks/{hook_id}")).text
    async with editor.app.state.sessionmaker() as s, s.begin():
        reason = "disabled: every call failed"
        await s.execute(update(Webhook).values(enabled=False, disabled_reason=reason))
    index = (await editor.get("/admin/webhooks")).text
    assert 'role="alert"' in index and "disabled: every call failed" in index
    assert "Enable again" in (await editor.get(f"/admin/webhooks/{hook_id}")).text
    assert (await editor.post_form(f"/admin/webhooks/{hook_id}/enable")).status_code == 303
    assert "Enable again" not in (await editor.get(f"/admin/webhooks/{hook_id}")).text
    assert (await editor.post_form(f"/admin/webhooks/{hook_id}/delete")).status_code == 303
    assert (await editor.get(f"/admin/webhooks/{hook_id}")).status_code == 404


async def test_viewer_reads_and_changes_nothing(console_as: Any) -> None:
    owner = await console_as("owner")
    viewer = await console_as("viewer")
    page = await viewer.get("/admin/webhooks")
    assert page.status_code == 200 and "New webhook" not in page.text
    r = await viewer.post_form(
        "/admin/webhooks", {"url": "https://x.example/", "events": "issue.started"}
    )
    assert r.status_code == 403
    assert "New webhook" in (await owner.get("/admin/webhooks")).text
