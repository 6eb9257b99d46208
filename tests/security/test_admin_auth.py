"""Every admin route answers 401 without the right token; the route list comes from the app."""

from __future__ import annotations

import inspect

import pytest
from sqlalchemy import select

from app import security
from app.accounts.models import ApiKey
from app.accounts.passwords import token_hash
from app.accounts.scopes import SCOPES, api_scope
from tests.conftest import ADMIN_TOKEN, AppClient
from tests.security.routes import PUBLIC_API, fill, openapi_routes, routes

WRONG_TOKENS = {
    "none": None,
    "same length": "x" * len(ADMIN_TOKEN),
    "one char off": ADMIN_TOKEN[:-1] + chr(ord(ADMIN_TOKEN[-1]) + 1),
    "prefix": ADMIN_TOKEN[:-3],
    "longer": ADMIN_TOKEN + "x",
    "longer by far": ADMIN_TOKEN * 40,
    "empty bearer": "",
}


def admin_routes(app: object) -> list[tuple[str, str]]:
    return [(m, p) for m, p in routes(app) if p.startswith("/api/v1/") and (m, p) not in PUBLIC_API]


async def test_openapi_lists_every_api_route(client: AppClient) -> None:
    """The OpenAPI document and app.routes agree, so enumerating either finds every route."""
    schema = (await client.get("/openapi.json")).json()
    documented = {r for r in openapi_routes(schema) if r[1].startswith("/api/v1/")}
    served = {r for r in routes(client.app) if r[1].startswith("/api/v1/")}
    assert served, "no /api/v1/ routes at all"
    assert served <= documented | {("HEAD", p) for _, p in served}, served - documented


async def test_every_admin_route_refuses_missing_and_wrong_tokens(anon: AppClient) -> None:
    """Each method of each /api/v1/ path (but the public sign-up) answers 401 to a bad token."""
    targets = admin_routes(anon.app)
    assert len(targets) >= 2, targets
    tried = 0
    failures = []
    for method, path in targets:
        for label, token in WRONG_TOKENS.items():
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            body = b"{}" if method in ("POST", "PUT", "PATCH") else None
            headers["Content-Type"] = "application/json"
            r = await anon.request(method, fill(path), headers=headers, content=body)
            tried += 1
            if r.status_code != 401 or "detail" not in r.json():
                failures.append(f"{method} {path} [{label}] -> {r.status_code}")
    print(f"admin auth: {len(targets)} operations x {len(WRONG_TOKENS)} tokens = {tried} requests")
    assert not failures, failures


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {ADMIN_TOKEN}",
        f"Token {ADMIN_TOKEN}",
        ADMIN_TOKEN,
        f"Bearer{ADMIN_TOKEN}",
        f"Bearer {ADMIN_TOKEN.upper()}",
    ],
)
async def test_token_must_be_a_bearer_token(anon: AppClient, header: str) -> None:
    """Only `Authorization: Bearer <token>`, exactly; not another scheme, not another case."""
    path = fill(admin_routes(anon.app)[0][1])
    method = admin_routes(anon.app)[0][0]
    r = await anon.request(method, path, headers={"Authorization": header})
    assert r.status_code == 401


async def test_token_in_query_string_is_not_accepted(anon: AppClient) -> None:
    """A token in the URL would end up in access logs: it is not an accepted credential."""
    method, path = next((m, p) for m, p in admin_routes(anon.app) if m == "GET")
    r = await anon.request(method, fill(path), params={"token": ADMIN_TOKEN})
    assert r.status_code == 401
    r = await anon.request(method, fill(path), params={"access_token": ADMIN_TOKEN})
    assert r.status_code == 401


async def test_right_token_passes(client: AppClient) -> None:
    """The same routes do not answer 401 with the right token (the checks above mean something)."""
    for method, path in admin_routes(client.app):
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        r = await client.request(
            method, fill(path), content=body, headers={"Content-Type": "application/json"}
        )
        assert r.status_code != 401, f"{method} {path}"


def test_comparison_is_constant_time() -> None:
    """The admin token is compared with hmac.compare_digest, never with ==, on the raw bytes."""
    source = inspect.getsource(security._bearer)
    assert "hmac.compare_digest(" in source
    assert "== expected" not in source and "expected ==" not in source
    assert "!= expected" not in source and "expected !=" not in source
    assert "startswith" not in source


# Scopes and roles, from the route table: a new route is checked the day it is added.


async def _keys_without_each_scope(client: AppClient) -> dict[str, str]:
    made = {}
    for missing in SCOPES:
        scopes = [s for s in SCOPES if s != missing]
        r = await client.post("/api/v1/api-keys", json={"name": f"no {missing}", "scopes": scopes})
        assert r.status_code == 201, r.text
        made[missing] = r.json()["key"]
    return made


async def test_a_key_outside_its_scope_is_refused_on_every_route(
    client: AppClient, anon: AppClient
) -> None:
    """For each API operation, a key holding every scope but the one it needs gets 403."""
    keys = await _keys_without_each_scope(client)
    failures, tried = [], 0
    for method, path in admin_routes(anon.app):
        needed = api_scope(method, path)
        headers = {"Authorization": f"Bearer {keys[needed]}", "Content-Type": "application/json"}
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        r = await anon.request(method, fill(path), headers=headers, content=body)
        tried += 1
        if r.status_code != 403:
            failures.append(f"{method} {path} needs {needed} -> {r.status_code}")
    print(f"scopes: {tried} operations refused to a key without their scope")
    assert not failures, failures


async def test_keys_with_the_right_scope_pass_and_revoked_keys_stop(
    client: AppClient, anon: AppClient
) -> None:
    r = await client.post("/api/v1/api-keys", json={"name": "reader", "scopes": ["read"]})
    key = r.json()["key"]
    assert r.json()["scopes"] == ["read"] and key.startswith("tdk_")
    async with client.app.state.sessionmaker() as session:
        stored = (await session.scalars(select(ApiKey))).one()
    assert key not in (stored.key_hash, stored.prefix) and stored.key_hash == token_hash(key)
    listed = (await client.get("/api/v1/api-keys")).json()["items"]
    assert [k["name"] for k in listed] == ["reader"] and "key" not in listed[0]
    reader = {"Authorization": f"Bearer {key}"}
    assert (await anon.get("/api/v1/lists", headers=reader)).status_code == 200
    assert (await anon.post("/api/v1/lists", headers=reader, json={})).status_code == 403
    listed = (await client.get("/api/v1/api-keys")).json()["items"]
    assert listed[0]["last_used_at"] is not None
    assert (await client.delete(f"/api/v1/api-keys/{listed[0]['id']}")).status_code == 204
    assert (await anon.get("/api/v1/lists", headers=reader)).status_code == 401
    entries = (await client.get("/api/v1/audit?limit=10")).json()["items"]
    actions = [e["action"] for e in entries]
    assert "api-key.delete" in actions and "api-key.create" in actions
    assert all(e["actor"] == "admin token" for e in entries if e["action"].startswith("api-key"))
