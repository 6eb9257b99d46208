"""The webhooks API: events and URLs checked (SSRF refusals), the secret shown once, CRUD."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.pagination import encode_cursor
from app.webhooks import addresses, signing
from app.webhooks.models import Webhook
from tests.conftest import AppClient
from tests.webhooks.helpers import register

INSIDE = [
    "http://127.0.0.1/hook",
    "http://127.8.9.10:8080/",
    "http://localhost:9/hook",  # a name that resolves to loopback
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[fd00::1]/",
]


async def test_unknown_event_and_bad_scheme_are_422(client: AppClient) -> None:
    body = {"url": "https://example.org/h", "events": ["subscriber.eaten"]}
    r = await client.post("/api/v1/webhooks", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "events"]
    bad = ("ftp://example.org/h", "javascript:alert(1)", "example.org/h", "http:///x",
           "http://a\x00b/", "http://example.org:99999/", "http://[::1/")  # fmt: skip
    for url in bad:
        r = await client.post("/api/v1/webhooks", json={"url": url, "events": ["issue.started"]})
        assert r.status_code == 422, url
        assert r.json()["detail"][0]["loc"] == ["body", "url"]


async def test_inside_addresses_are_refused_at_create(client: AppClient) -> None:
    """Every inside address of the table is a 422 naming the URL; none is stored."""
    wrong = []
    for url in INSIDE:
        r = await client.post("/api/v1/webhooks", json={"url": url, "events": ["issue.started"]})
        loc = r.json()["detail"][0]["loc"] if r.status_code == 422 else None
        if loc != ["body", "url"]:
            wrong.append((url, r.status_code, r.text[:200]))
    assert not wrong, wrong
    assert (await client.get("/api/v1/webhooks")).json()["items"] == []


async def test_a_name_resolving_inside_is_refused(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fake(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]  # one public address is not enough

    monkeypatch.setattr(addresses, "resolve", fake)
    body = {"url": "https://hooks.example/", "events": ["issue.started"]}
    r = await client.post("/api/v1/webhooks", json=body)
    assert r.status_code == 422
    assert "10.0.0.7" in r.json()["detail"][0]["msg"]


async def test_allowed_private_when_configured(app_factory: Any) -> None:
    client = await app_factory(webhook_allow_private=True)
    created = await register(client, "http://127.0.0.1:9/hook", ["subscriber.created"])
    assert created["url"] == "http://127.0.0.1:9/hook"


async def test_create_shows_the_secret_once_and_stores_it_sealed(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    monkeypatch.setattr(addresses, "resolve", public)
    events = ["subscriber.created", "link.clicked", "subscriber.created"]
    created = await register(client, "https://hooks.example/in", events)
    assert created["events"] == ["subscriber.created", "link.clicked"]
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    listed = (await client.get("/api/v1/webhooks")).json()["items"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in (await client.get(f"/api/v1/webhooks/{created['id']}")).json()
    async with client.app.state.sessionmaker() as s:
        sealed = (await s.scalars(select(Webhook.secret_sealed))).one()
    assert secret not in sealed and secret.removeprefix("whsec_") not in sealed
    key = client.app.state.settings.secret_key_value
    assert signing.unseal(sealed, secret_key=key) == secret


async def test_patch_disable_enable_and_delete(client: AppClient, monkeypatch: Any) -> None:
    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    monkeypatch.setattr(addresses, "resolve", public)
    hook = await register(client, "https://hooks.example/in", ["issue.started"])
    url = f"/api/v1/webhooks/{hook['id']}"
    r = await client.patch(url, json={"enabled": False})
    assert r.json()["enabled"] is False and r.json()["disabled_reason"] == "disabled by hand"
    r = await client.patch(url, json={"enabled": True, "events": ["issue.finished"]})
    assert r.json()["enabled"] is True and r.json()["disabled_reason"] is None
    assert r.json()["events"] == ["issue.finished"]
    assert (await client.patch(url, json={"url": "http://10.0.0.1/"})).status_code == 422
    assert (await client.patch(url, json={"events": ["nope"]})).status_code == 422
    assert (await client.delete(url)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.get(f"{url}/deliveries")).status_code == 404


async def test_needs_the_admin_token(anon: AppClient) -> None:
    assert (await anon.get("/api/v1/webhooks")).status_code == 401
    r = await anon.post("/api/v1/webhooks", json={"url": "https://x.example/", "events": []})
    assert r.status_code == 401


async def test_cursors_past_every_id_are_not_errors(client: AppClient, monkeypatch: Any) -> None:
    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    monkeypatch.setattr(addresses, "resolve", public)
    hook = await register(client, "https://hooks.example/in", ["issue.started"])
    huge = encode_cursor(2**62)
    r = await client.get("/api/v1/webhooks", params={"cursor": huge})
    assert r.status_code == 200 and r.json()["items"] == []
    r = await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", params={"cursor": huge})
    assert r.status_code == 200 and r.json()["items"] == []
    assert (await client.get("/api/v1/webhooks/99999999999")).status_code == 422
