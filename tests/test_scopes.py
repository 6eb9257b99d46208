"""The scope each family of routes needs (app/accounts/scopes.py), over HTTP with keys:
the one scope it names lets a key through (2xx), every other scope alone is 403."""

from __future__ import annotations

from typing import Any

import pytest

from app.accounts.scopes import SCOPES, api_scope
from app.webhooks import addresses
from tests.conftest import AppClient, make_list
from tests.media.images import image_bytes


@pytest.fixture
async def keys(client: AppClient) -> dict[str, dict[str, str]]:
    """A key holding just one scope, for each scope: {scope: headers}."""
    made = {}
    for scope in SCOPES:
        r = await client.post("/api/v1/api-keys", json={"name": scope, "scopes": [scope]})
        assert r.status_code == 201, r.text
        made[scope] = {"Authorization": f"Bearer {r.json()['key']}"}
    return made


def test_the_table() -> None:
    assert api_scope("GET", "/api/v1/webhooks") == "admin"  # reads too: URLs hold secrets
    assert api_scope("GET", "/api/v1/webhooks/{webhook_id}/deliveries") == "admin"
    assert api_scope("POST", "/api/v1/webhooks/{webhook_id}/test") == "admin"
    assert api_scope("POST", "/api/v1/segments") == "subscribers"
    assert api_scope("POST", "/api/v1/segments/count") == "read"
    assert api_scope("GET", "/api/v1/segments/{segment_id}") == "read"
    assert api_scope("POST", "/api/v1/messages") == "send"
    assert api_scope("GET", "/api/v1/messages/{message_id}") == "read"
    assert api_scope("POST", "/api/v1/media") == "issues"
    assert api_scope("PUT", "/api/v1/branding") == "admin"
    assert api_scope("GET", "/api/v1/branding") == "read"
    assert api_scope("POST", "/api/v1/issues/{issue_id}/activate") == "send"
    assert api_scope("POST", "/api/v1/issues/{issue_id}/duplicate") == "issues"


async def _only(
    anon: AppClient, keys: dict[str, dict[str, str]], scope: str, method: str, path: str,
    **request: Any,
) -> Any:  # fmt: skip
    """Every other single-scope key is refused; the one with `scope` gets the answer."""
    for other in SCOPES:
        if other != scope:
            r = await anon.request(method, path, headers=keys[other], **request)
            assert r.status_code == 403, (other, method, path, r.status_code)
    return await anon.request(method, path, headers=keys[scope], **request)


async def test_webhooks_need_admin(
    anon: AppClient, keys: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    monkeypatch.setattr(addresses, "resolve", public)
    body = {"url": "https://hooks.example/in", "events": ["subscriber.created"]}
    r = await _only(anon, keys, "admin", "POST", "/api/v1/webhooks", json=body)
    assert r.status_code == 201, r.text
    assert (await _only(anon, keys, "admin", "GET", "/api/v1/webhooks")).status_code == 200


async def test_segments_need_subscribers_and_reads_need_read(
    anon: AppClient, keys: dict[str, dict[str, str]]
) -> None:
    await make_list(anon, "news")
    rule = {"list": "news", "status": "confirmed"}
    r = await _only(anon, keys, "subscribers", "POST", "/api/v1/segments",
                    json={"name": "members", "rules": rule})  # fmt: skip
    assert r.status_code == 201, r.text
    segment = r.json()["id"]
    r = await _only(anon, keys, "read", "GET", f"/api/v1/segments/{segment}/count")
    assert r.status_code == 200 and r.json() == {"count": 0}
    r = await _only(anon, keys, "read", "POST", "/api/v1/segments/count", json={"rules": rule})
    assert r.status_code == 200, r.text
    r = await _only(anon, keys, "subscribers", "DELETE", f"/api/v1/segments/{segment}")
    assert r.status_code == 204


async def test_messages_need_send(anon: AppClient, keys: dict[str, dict[str, str]]) -> None:
    message = {"to": "ann@example.org", "template": "message", "subject": "Your order",
               "data": {}}  # fmt: skip
    r = await _only(anon, keys, "send", "POST", "/api/v1/messages", json=message)
    assert r.status_code == 202, r.text
    r = await _only(anon, keys, "read", "GET", f"/api/v1/messages/{r.json()['id']}")
    assert r.status_code == 200


async def test_media_needs_issues_and_branding_admin(
    anon: AppClient, keys: dict[str, dict[str, str]]
) -> None:
    files = {"file": ("photo.png", image_bytes("PNG"), "image/png")}
    r = await _only(anon, keys, "issues", "POST", "/api/v1/media", files=files)
    assert r.status_code == 201, r.text
    assert (await _only(anon, keys, "read", "GET", "/api/v1/media")).status_code == 200
    shown = await _only(anon, keys, "read", "GET", "/api/v1/branding")
    assert shown.status_code == 200
    body = {"name": "Tidings Test", "address": "1 Main St", "accent": "#123456"}
    r = await _only(anon, keys, "admin", "PUT", "/api/v1/branding", json=body)
    assert r.status_code == 200, r.text
