"""Out-of-range ids and foreign cursors are clean 4xx answers of the documented shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


async def test_cursors_past_the_largest_id_are_422(client: AppClient) -> None:
    """Issue 16: a cursor naming 2^63 or more overflowed the driver (a 500 on PostgreSQL)."""
    from app.pagination import encode_cursor

    failures = []
    async with plain(client) as c:
        for n in (2**63, 2**64 - 1, 10**19 - 1):
            for path in (
                "/api/v1/lists",
                "/api/v1/subscribers",
                "/api/v1/issues",
                "/api/v1/bounces",
                "/api/v1/media",
            ):
                r = await c.get(path, params={"cursor": encode_cursor(n)})
                if r.status_code != 422:
                    failures.append(f"{path} cursor {n}: {r.status_code}")
    assert not failures, failures
    r = await client.get("/api/v1/subscribers", params={"cursor": encode_cursor(2**63 - 1)})
    assert r.status_code == 200 and r.json()["items"] == []


async def test_json_nested_5000_deep_is_a_4xx_everywhere(client: AppClient) -> None:
    """Issue 16: the public sign-up parsed its own JSON and answered 500 to deep nesting."""
    deep = "[" * 5000 + "]" * 5000
    nested_object = '{"a":' * 5000 + "1" + "}" * 5000
    failures = []
    async with plain(client) as c:
        for path in (
            "/api/v1/subscribe",
            "/api/v1/subscribers",
            "/api/v1/lists",
            "/api/v1/issues",
            "/api/v1/bounces",
            "/api/v1/segments",
        ):
            for body in (deep, nested_object):
                r = await c.post(path, content=body, headers={"content-type": "application/json"})
                if not 400 <= r.status_code < 500:
                    failures.append(f"{path}: {r.status_code}")
    assert not failures, failures


async def test_public_sign_up_attributes_are_bounded(client: AppClient) -> None:
    """Issue 16: a 900 KB value, or 100 values of 9 KB, were stored and reached every send."""
    from tests.security.seed import make_list

    await make_list(client, "news")
    base = {"email": "a@example.org", "lists": ["news"]}
    refused = [
        {"bio": "x" * 900_000},
        {f"k{i}": "x" * 9000 for i in range(100)},
        {f"k{i}": "x" for i in range(21)},
        {"k" * 65: "x"},
        {"nested": {"deeper": {"deepest": 1}}},
        {"line\nbreak": "x"},
    ]
    for attributes in refused:
        r = await client.post("/api/v1/subscribe", json={**base, "attributes": attributes})
        assert r.status_code == 422, (list(attributes)[:1], r.status_code)
    ok = await client.post(
        "/api/v1/subscribe", json={**base, "attributes": {"plan": "pro", "n": 3}}
    )
    assert ok.status_code == 202
    r = await client.post(
        "/api/v1/subscribers", json={"email": "b@example.org", "attributes": {"bio": "x" * 20_000}}
    )
    assert r.status_code == 422  # an admin's attributes are bounded too, more loosely


async def test_json_nested_deep_on_the_bounce_webhooks_is_422(
    app_factory: Callable[..., Any],
) -> None:
    """The same fault found on the provider webhooks (their own json.loads): 500 before."""
    client = await app_factory(webhook_secret="s3cret")
    deep = "[" * 5000 + "]" * 5000
    async with plain(client) as c:
        for provider in ("sendgrid", "postmark", "mailgun", "ses"):
            r = await c.post(
                f"/webhooks/{provider}?secret=s3cret",
                content=deep,
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 422, (provider, r.status_code)
