"""Out-of-range ids and foreign cursors are clean 4xx answers of the documented shape."""

from __future__ import annotations

import httpx

from tests.conftest import AppClient

HUGE = [2**31, 2**63, 2**70]


def plain(client: AppClient) -> httpx.AsyncClient:
    """The app as a real server answers: an unhandled error is a 500, not an exception."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=client.app, raise_app_exceptions=False),
        base_url=str(client.base_url),
        headers=client.headers,
    )


async def test_huge_ids_elsewhere_are_4xx(client: AppClient) -> None:
    """Subscribers, bounces: ids past any column's range are 404/422, never 500."""
    async with plain(client) as c:
        for n in HUGE:
            for path in (f"/api/v1/subscribers/{n}", f"/api/v1/subscribers/{n}/export"):
                r = await c.get(path)
                assert r.status_code in (404, 422), (path, r.status_code)


async def test_huge_issue_ids_are_4xx(client: AppClient) -> None:
    """Issue ids past the column's range are 404/422, never 500."""
    failures = []
    async with plain(client) as c:
        for n in HUGE:
            for method, path in (
                ("GET", f"/api/v1/issues/{n}"),
                ("GET", f"/api/v1/issues/{n}/stats"),
                ("POST", f"/api/v1/issues/{n}/pause"),
                ("DELETE", f"/api/v1/issues/{n}"),
                ("GET", f"/archive/{n}"),
                ("GET", f"/archive?before={n}"),
            ):
                r = await c.request(method, path)
                if r.status_code >= 500:
                    failures.append(f"{method} {path}: {r.status_code}")
    assert not failures, failures


async def test_bad_cursor_422_matches_documented_shape(client: AppClient) -> None:
    """A cursor this API never made: 422 whose detail is the documented list of errors."""
    from tests.security.seed import make_list

    await make_list(client, "news")
    body = {"subject": "S", "lists": ["news"], "body": "b"}
    issue = await client.post("/api/v1/issues", json=body)
    assert issue.json()["id"] == 1
    for path in (
        "/api/v1/issues",
        "/api/v1/issues/1/deliveries",
        "/api/v1/bounces",
        "/api/v1/lists",
        "/api/v1/subscribers",
    ):
        r = await client.get(path, params={"cursor": "not-a-cursor"})
        assert r.status_code == 422, path
        assert isinstance(r.json()["detail"], list), (path, r.json())


async def test_metrics_content_type_documented(client: AppClient) -> None:
    """The OpenAPI document says what /metrics really answers."""
    schema = (await client.get("/openapi.json")).json()
    content = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert any(t.startswith("text/plain") for t in content), content


async def _nul_answers(client: AppClient) -> dict[str, int]:
    """The status of each API write whose text field holds a NUL character."""
    from tests.security.seed import make_list

    await make_list(client, "news")
    cases = {
        "list description": ("/api/v1/lists", {"slug": "n1", "name": "N", "description": "d\x00"}),
        "issue body": ("/api/v1/issues", {"subject": "s", "lists": ["news"], "body": "b\x00"}),
        "issue preheader": (
            "/api/v1/issues",
            {"subject": "s", "preheader": "p\x00", "lists": ["news"], "body": "b"},
        ),
        "subscriber attribute": (
            "/api/v1/subscribers",
            {"email": "nul@example.org", "attributes": {"k": "v\x00"}},
        ),
        "bounce reason": (
            "/api/v1/bounces",
            {"email": "nul@example.org", "type": "soft", "reason": "r\x00"},
        ),
    }
    answers = {}
    async with plain(client) as c:
        for label, (path, body) in cases.items():
            answers[label] = (await c.post(path, json=body)).status_code
    return answers


async def test_nul_characters_are_never_a_500(client: AppClient) -> None:
    """NUL in free text (PostgreSQL cannot store it) is refused or stored, never a 500."""
    answers = await _nul_answers(client)
    assert all(code < 500 for code in answers.values()), answers
