"""The segment builder in headless Chromium: the count follows the structured editor; axe-core."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.console.conftest import LiveConsole
from tests.console.test_audience_browser import accessible
from tests.segments.fixtures import SENT_ISSUE, seed

pytestmark = [pytest.mark.chromium, pytest.mark.one_backend("sqlite")]


class _Holder:
    def __init__(self, app: Any) -> None:
        self.app = app


async def test_builder_counts_as_the_rule_changes_and_saves(
    live_console: LiveConsole, signed_in_page: Callable[..., Awaitable[Any]]
) -> None:
    base = live_console.url
    await seed(_Holder(live_console.app))  # type: ignore[arg-type]
    page = await signed_in_page("editor", width=375, height=800)
    page.on("dialog", lambda d: pytest.fail(f"a dialog opened: {d.message}"))
    await page.goto(f"{base}/admin/segments/new")
    count = page.locator("#segment-count")
    # The first rule is news' confirmed members: ann and bob.
    await count.get_by_text("2 people match this rule now.").wait_for()
    await accessible(page)

    builder = page.locator("#segment-builder")
    await builder.get_by_label("Rule › 1: status").select_option("pending")
    await count.get_by_text("1 person matches this rule now.").wait_for()

    # Add a condition (an attribute) and switch the group to any: pending members or VIPs.
    await builder.get_by_role("button", name="Add a condition to Rule").click()
    await builder.get_by_label("Rule › 2: attribute name").fill("vip")
    await builder.get_by_label("Rule › 2 value type").select_option("boolean")
    await builder.get_by_label("Rule › 2 value", exact=True).fill("true")
    await count.get_by_text("0 people match this rule now.").wait_for()
    await builder.get_by_label("Rule: combine").select_option("any")
    await count.get_by_text("2 people match this rule now.").wait_for()
    assert json.loads(await page.locator("#f-rules").input_value()) == {
        "any": [
            {"list": "news", "status": "pending"},
            {"attribute": "vip", "op": "eq", "value": True},
        ]
    }
    # A rule the grammar refuses is named where, not counted.
    await builder.get_by_label("Rule › 1: list slug").fill("nope")
    await count.get_by_text("Not counted: rules › any › 0 › list: unknown list: nope").wait_for()
    await builder.get_by_label("Rule › 1: list slug").fill("news")
    await count.get_by_text("2 people match this rule now.").wait_for()
    # Who was sent an issue, from its per-recipient log: ann and bob (cy's failed).
    await builder.get_by_role("button", name="Add a condition to Rule").click()
    await builder.get_by_label("Rule › 3: kind").select_option("engaged")
    await builder.get_by_label("Rule › 3: engaged").select_option("sent")
    await builder.get_by_label("Rule › 3: issue id or any").fill(str(SENT_ISSUE))
    await count.get_by_text("3 people match this rule now.").wait_for()
    assert json.loads(await page.locator("#f-rules").input_value())["any"][2] == {
        "engaged": "sent", "issue": SENT_ISSUE}  # fmt: skip
    # Every control of a condition has its name on screen, not only for a screen reader.
    unlabelled = await builder.locator(".seg-condition").evaluate_all(
        """rows => rows.flatMap(r => [...r.querySelectorAll('input, select')])
            .filter(c => !(c.closest('label.seg-field')?.innerText.trim()))
            .map(c => c.getAttribute('aria-label'))"""
    )
    assert unlabelled == []
    assert await builder.get_by_text("Within days (empty: ever)").count() == 1
    assert await builder.get_by_text("Issue id or any", exact=True).is_visible()
    await accessible(page)

    await page.get_by_label("Name", exact=True).fill("Pending, VIP or sent")
    await page.get_by_role("button", name="Save segment").click()
    await page.get_by_text("Segment 'Pending, VIP or sent' saved.").wait_for()
    await page.goto(f"{base}/admin/segments")
    row = page.get_by_role("row", name="Pending, VIP or sent")
    assert "3" in await row.inner_text()
    await accessible(page)
