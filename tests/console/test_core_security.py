"""Roles and CSRF from the route table: console sessions on the API and every console route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.conftest import AppClient
from tests.console.conftest import ConsoleClient
from tests.security.routes import PUBLIC_API, console_routes, fill, needs_session, routes

SignedIn = Callable[[str], Awaitable[ConsoleClient]]
# Reads that are POSTs (app/accounts/scopes.py): a viewer may make them; they write nothing.
READ_POSTS = {("POST", "/api/v1/segments/count")}


def admin_routes(app: object) -> list[tuple[str, str]]:
    return [(m, p) for m, p in routes(app) if p.startswith("/api/v1/") and (m, p) not in PUBLIC_API]


async def test_a_viewer_session_writes_nothing_through_the_api(
    console_as: SignedIn,
) -> None:
    """A console session may call the API (cookie + CSRF header); a viewer only reads."""
    viewer = await console_as("viewer")
    headers = {"X-CSRF-Token": viewer.csrf, "Content-Type": "application/json"}
    assert (await viewer.get("/api/v1/lists")).status_code == 200
    failures = []
    for method, path in admin_routes(viewer.app):
        if method in ("GET", "HEAD"):
            continue
        r = await viewer.request(method, fill(path), headers=headers, content=b"{}")
        if (method, path) in READ_POSTS:
            if r.status_code == 403:  # allowed, and {} is not a rule: 422
                failures.append(f"{method} {path} -> 403 for a read")
        elif r.status_code != 403:
            failures.append(f"{method} {path} -> {r.status_code}")
    assert not failures, failures


async def test_a_session_write_to_the_api_needs_the_csrf_header(
    console_as: SignedIn,
) -> None:
    owner = await console_as("owner")
    body = {"slug": "news", "name": "News"}
    assert (await owner.post("/api/v1/lists", json=body)).status_code == 403
    bad = {"X-CSRF-Token": "0" * 64}
    assert (await owner.post("/api/v1/lists", json=body, headers=bad)).status_code == 403
    good = {"X-CSRF-Token": owner.csrf}
    assert (await owner.post("/api/v1/lists", json=body, headers=good)).status_code == 201
    entries = (await owner.get("/api/v1/audit")).json()["items"]
    assert entries[0]["action"] == "list.create" and entries[0]["actor"] == "owner1@example.org"


async def test_every_console_route_refuses_without_a_session(anon: AppClient) -> None:
    targets = [(m, p) for m, p in console_routes(anon.app) if needs_session(p)]
    assert len(targets) >= 10, targets
    failures = []
    for method, path in targets:
        r = await anon.request(method, fill(path), data={"csrf_token": "x"})
        refused = r.status_code in (401, 403) or (
            r.status_code == 303 and r.headers["location"].startswith("/admin/login")
        )
        if not refused:
            failures.append(f"{method} {path} -> {r.status_code}")
    print(f"console: {len(targets)} routes refused without a session")
    assert not failures, failures


async def test_every_console_write_refuses_without_the_csrf_token(
    console_as: SignedIn,
) -> None:
    owner = await console_as("owner")
    targets = [(m, p) for m, p in console_routes(owner.app) if m not in ("GET", "HEAD")]
    assert len(targets) >= 10, targets
    failures = []
    for method, path in targets:
        for data in ({}, {"csrf_token": "0" * 64}):
            r = await owner.request(method, fill(path), data=data)
            if r.status_code != 403:
                failures.append(f"{method} {path} {data} -> {r.status_code}")
    assert (await owner.get("/admin")).status_code == 200  # still signed in: nothing ended
    print(f"console: {len(targets)} writes refused without the CSRF token")
    assert not failures, failures


async def test_a_viewer_changes_nothing_in_the_console(
    console_as: SignedIn,
) -> None:
    """Every console write but a person's own account and sign-out is 403 to a viewer."""
    viewer = await console_as("viewer")
    failures = []
    for method, path in console_routes(viewer.app):
        if (
            method == "GET"
            or not needs_session(path)
            or path.startswith(("/admin/account", "/admin/logout"))
        ):
            continue
        r = await viewer.request(method, fill(path), data={"csrf_token": viewer.csrf})
        if r.status_code != 403:
            failures.append(f"{method} {path} -> {r.status_code}")
    assert not failures, failures
