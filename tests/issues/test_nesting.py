"""Markup deep enough to overflow a native parser's stack is refused before one sees it."""

from __future__ import annotations

import pytest

from app.issues.nesting import MAX_DEPTH, TooDeep, check_depth
from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list


def nested(n: int, tag: str = "div") -> str:
    return f"<{tag}>" * n + "x" + f"</{tag}>" * n


def test_depth_is_counted_as_a_browser_nests() -> None:
    check_depth(nested(MAX_DEPTH))
    with pytest.raises(TooDeep):
        check_depth(nested(MAX_DEPTH + 1))
    # Siblings, void elements, implied ends and stray end tags are not nesting.
    check_depth("<div>a</div>" * 5000 + "<br>" * 5000 + "<img src=x>" * 500)
    check_depth("<ul>" + "<li>item" * 5000 + "</ul>" + "<p>para" * 5000)
    check_depth("</div>" * 5000 + nested(50))
    check_depth("<table>" + "<tr><td>cell" * 3000 + "</table>")
    with pytest.raises(TooDeep):
        check_depth(nested(MAX_DEPTH + 1, "mj-wrapper"))


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("format", nested(40_000)),  # css-inline dies past ~9,500 (a segfault, not an error)
        ("format", "# Title\n\n" + nested(5_000, "span")),  # raw HTML inside Markdown
        ("body", "{% for i in range(300) %}<div>{% endfor %}deep"),  # depth made by Jinja
    ],
)
async def test_deep_bodies_are_refused_with_422(client: AppClient, field: str, body: str) -> None:
    await make_list(client, "news")
    fmt = "html" if field == "format" else "markdown"
    created = await client.post(
        "/api/v1/issues", json={"subject": "s", "lists": ["news"], "format": fmt, "body": body}
    )
    assert created.status_code == 422, created.text
    [error] = created.json()["detail"]
    assert error["loc"] == ["body", "body"] and "nests deeper than" in error["msg"]

    issue = await make_issue(client)
    patched = await client.patch(f"/api/v1/issues/{issue['id']}", json={"body": body})
    assert patched.status_code == 422 and "nests deeper" in patched.text
    assert (await client.get(f"/api/v1/issues/{issue['id']}/preview")).status_code == 200
