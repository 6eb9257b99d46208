"""Layouts: folders listed with previews; an owner adds an MJML layout only if it compiles,
bounded in size and depth; issues can then use it; editors and viewers cannot add."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.issues import stored_layouts
from tests.console.conftest import csrf_of
from tests.issues.factory import make_issue, make_list

pytestmark = pytest.mark.asyncio
GOOD = """<mjml><mj-body width="600px"><mj-section><mj-column>
<mj-text font-size="22px">{{ organisation.name }} – Acme edition</mj-text>
<mj-text>{{ body }}</mj-text>
<mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
</mj-column></mj-section></mj-body></mjml>"""


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    stored_layouts.reset()
    yield
    stored_layouts.reset()


async def add(c: Any, **values: str) -> Any:
    return await c.post_form("/admin/layouts", {"name": "acme", "mjml": GOOD, "text": ""} | values)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"mjml": "<mjml><mj-body><mj-text>{{ body }}</mj-body>"}, "does not compile"),
        ({"mjml": GOOD.replace("{{ body }}", "")}, "must print {{ body }}"),
        ({"mjml": GOOD.replace("{{ body }}", "{{ body }}{% for %}")}, "does not compile"),
        ({"mjml": GOOD + "<!--" + "x" * 100_000 + "-->"}, "over 100 KB"),
        (
            {"mjml": GOOD.replace("{{ body }}", "{{ body }}" + "<div>" * 5000 + "</div>" * 5000)},
            "does not compile",
        ),
        (
            {"mjml": GOOD.replace("{{ organisation.name }}", "{{ ''.__class__ }}")},
            "does not compile",
        ),
        ({"name": "../etc"}, "lower-case letters"),
        ({"name": "newsletter"}, "exists already"),
    ],
)
async def test_bad_layouts_are_refused_with_the_reason(
    console_as: Any, values: dict[str, str], reason: str
) -> None:
    owner = await console_as("owner")
    owner.csrf = csrf_of((await owner.get("/admin/layouts")).text)
    answer = await add(owner, **values)
    assert answer.status_code in (409, 422), answer.text
    assert reason.replace("{", "&#123;")[:10] in answer.text or reason in answer.text
    assert stored_layouts.names() == stored_layouts.folder_names()


async def test_owner_adds_a_layout_and_an_issue_uses_it(client: Any, console_as: Any) -> None:
    owner = await console_as("owner")
    listing = await owner.get("/admin/layouts")
    assert 'src="/console-preview/layouts/newsletter"' in listing.text
    frame = await owner.get("/console-preview/layouts/newsletter")
    assert frame.status_code == 200 and "A sample issue" in frame.text
    assert frame.headers["content-security-policy"].startswith("sandbox")
    owner.csrf = csrf_of(listing.text)
    assert (await add(owner)).status_code == 303
    assert "acme" in (await owner.get("/admin/layouts")).text
    preview = await owner.get("/console-preview/layouts/acme")
    assert "Acme edition" in preview.text
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"], template="acme")
    html = (await client.get(f"/api/v1/issues/{issue['id']}/preview")).text
    assert "Acme edition" in html
    editor = await console_as("editor")
    page = await editor.get("/admin/layouts")
    assert "Add an MJML layout" not in page.text
    editor.csrf = csrf_of(page.text)
    assert (await add(editor, name="other")).status_code == 403
