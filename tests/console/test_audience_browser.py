"""The audience console in headless Chromium: an editor's walk, then a viewer's, with axe-core.

The editor creates a list, imports 1,000 rows with three bad ones (import.js streams the
file and shows the bad rows by line), finds a person, edits an attribute, erases another
after typing the address, and reads the bounce log. The viewer sees the same pages at
phone width and can change nothing. axe-core checks every page for serious or critical
violations; a list name and attributes carrying markup never run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from app.models import Bounce, Subscriber
from tests.console.conftest import LiveConsole

pytestmark = [pytest.mark.chromium, pytest.mark.one_backend("sqlite")]

XSS_NAME = 'Weekly <img src=x onerror="window.__xss=1">'
BAD_ROWS = {10: "not-an-email", 500: "bad@", 998: "@nowhere.example"}  # row index: address


def thousand_rows() -> bytes:
    lines = ["email,name,city"]
    for i in range(1000):
        email = BAD_ROWS.get(i, f"person{i:04d}@example.org")
        lines.append(f"{email},Person {i},City {i % 7}")
    return ("\n".join(lines) + "\n").encode()


async def accessible(page: Any) -> None:
    """No serious or critical axe-core violation, and no sideways scroll, on this page."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{page.url}: {bad}"
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"
    assert await page.evaluate("window.__xss === undefined"), f"{page.url} ran injected markup"
    assert await page.locator("img[onerror]").count() == 0


async def test_editor_walk_then_viewer(
    live_console: LiveConsole, signed_in_page: Callable[..., Awaitable[Any]]
) -> None:
    base = live_console.url
    page = await signed_in_page("editor")
    page.on("dialog", lambda d: pytest.fail(f"a dialog opened: {d.message}"))

    await page.goto(f"{base}/admin/lists")
    await accessible(page)
    await page.get_by_label("Name", exact=True).fill(XSS_NAME)
    await page.get_by_label("Slug").fill("weekly")
    await page.get_by_role("button", name="Create list").click()
    await page.wait_for_url(f"{base}/admin/lists/weekly")
    await page.get_by_text("created.").wait_for()
    await accessible(page)

    await page.get_by_role("link", name="Import a CSV into this list").click()
    await page.wait_for_url(f"{base}/admin/imports?list=weekly")
    await accessible(page)
    await page.get_by_label("CSV file").set_input_files(
        files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": thousand_rows()}]
    )
    await page.get_by_role("button", name="Import").click()
    result = page.locator("#import-result")
    await result.get_by_text("Import finished").wait_for()
    assert page.url == f"{base}/admin/imports?list=weekly"  # import.js, not a form post
    assert await page.locator("#import-bar").get_attribute("value") == "100"
    figures = await result.locator(".figures").inner_text()
    assert "997 created" in " ".join(figures.split()) and "3 with errors" in " ".join(
        figures.split()
    )
    lines = await result.locator("tbody th").all_inner_texts()
    assert lines == ["12", "502", "1000"]
    await accessible(page)

    await page.goto(f"{base}/admin/subscribers")
    await page.get_by_label("Search email or name").fill("person0042")
    await page.get_by_role("button", name="Show").click()
    await page.get_by_role("link", name="person0042@example.org").click()
    await page.get_by_role("heading", name="person0042@example.org").wait_for()
    await accessible(page)
    city = page.get_by_label("Value of attribute 1")
    assert await city.input_value() == "City 0"
    await city.fill("Bergen <b>bold</b>")
    await page.get_by_role("button", name="Save attributes").click()
    await page.get_by_text("Attributes saved.").wait_for()
    assert await page.get_by_label("Value of attribute 1").input_value() == "Bergen <b>bold</b>"

    async with live_console.app.state.sessionmaker() as session:
        people = {s.email: s.id for s in await session.scalars(select(Subscriber))}
        session.add(Bounce(event_key="walk-1", email="person0042@example.org", type="hard",
                           subscriber_id=people["person0042@example.org"], source="dsn",
                           status="5.1.1", diagnostic="user unknown"))  # fmt: skip
        await session.commit()

    await page.goto(f"{base}/admin/subscribers/{people['person0043@example.org']}")
    await page.get_by_role("link", name="Erase this subscriber…").click()
    await accessible(page)
    await page.get_by_label("Type the address").fill("person0044@example.org")
    await page.get_by_role("button", name="Erase for good").click()
    await page.get_by_text("nothing was erased").wait_for()
    await page.get_by_label("Type the address").fill("person0043@example.org")
    await page.get_by_role("button", name="Erase for good").click()
    await page.wait_for_url(f"{base}/admin/subscribers")
    await page.get_by_text("erased; only a hash").wait_for()

    await page.goto(f"{base}/admin/bounces")
    await accessible(page)
    row = page.locator("tbody tr", has_text="user unknown")
    await row.get_by_role("link", name="person0042@example.org").click()
    await page.get_by_role("heading", name="person0042@example.org").wait_for()
    assert "user unknown" in await page.locator("#bounce-caption ~ tbody").inner_text()

    async with live_console.app.state.sessionmaker() as session:
        emails = set(await session.scalars(select(Subscriber.email)))
    assert "person0043@example.org" not in emails and len(emails) == 996

    viewer = await signed_in_page("viewer", width=375, height=740)
    for path in ("/admin/lists", "/admin/lists/weekly", "/admin/subscribers",
                 f"/admin/subscribers/{people['person0042@example.org']}",
                 f"/admin/subscribers/{people['person0044@example.org']}/erase",
                 "/admin/imports", "/admin/bounces"):  # fmt: skip
        await viewer.goto(f"{base}{path}")
        await accessible(viewer)
        for name in ("Create list", "Save list", "Save attributes", "Erase for good", "Import",
                     "Blocklist this address", "Delete list weekly"):  # fmt: skip
            assert await viewer.get_by_role("button", name=name, exact=True).count() == 0, path
    status = await viewer.evaluate(
        """() => fetch('/admin/lists/weekly/delete', {method: 'POST',
             headers: {'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content}})
           .then(r => r.status)"""
    )
    assert status == 403
    await viewer.goto(f"{base}/admin/lists/weekly")
    assert await viewer.get_by_role("heading", level=1).inner_text() == f"{XSS_NAME} weekly"
