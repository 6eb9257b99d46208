"""One audit mechanism for API and console writes; cookies behind https; the user command."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from typer.testing import CliRunner

from app.cli import cli
from tests.conftest import AppClient
from tests.console.conftest import ConsoleClient, create_account, sign_in
from tests.subscribers.helpers import add


async def _audit(client: AppClient) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/audit", params={"limit": 1000})
    assert r.status_code == 200
    return r.json()["items"]  # type: ignore[no-any-return]


async def test_every_api_write_is_in_the_audit_log_and_failures_are_not(
    client: AppClient,
) -> None:
    body = {"slug": "news", "name": "News"}
    assert (await client.post("/api/v1/lists", json=body)).status_code == 201
    assert (await client.post("/api/v1/lists", json=body)).status_code == 409
    r = await client.patch("/api/v1/lists/news", json={"name": "The News"})
    assert r.status_code == 200
    person = await add(client, "ann@example.org", name="Ann", lists=["news"])
    assert (await client.delete(f"/api/v1/subscribers/{person['id']}")).status_code in (200, 204)
    entries = await _audit(client)
    got = [(e["action"], e["target"]) for e in reversed(entries)]
    assert got[0][0] == "list.create" and got[0][1].startswith("list ")
    assert ("list.update", "list news") in got
    assert ("subscriber.delete", f"subscriber {person['id']}") in got
    assert len([a for a, _ in got if a == "list.create"]) == 1  # the 409 left no entry
    assert all(e["actor"] == "admin token" for e in entries)
    assert "ann@example.org" not in str(entries)  # the log outlives an erasure: no address
    page = (await _audit(client))[:1]
    r = await client.get("/api/v1/audit", params={"limit": 1})
    assert r.json()["items"] == page and r.json()["next_cursor"]
    older = await client.get(
        "/api/v1/audit", params={"limit": 1, "cursor": r.json()["next_cursor"]}
    )
    assert older.json()["items"] != page


async def test_console_writes_are_audited_by_the_same_mechanism(
    console_as: Callable[[str], Awaitable[ConsoleClient]], client: AppClient
) -> None:
    owner = await console_as("owner")
    await owner.post_form("/admin/people/invite", {"email": "vi@example.org", "role": "viewer"})
    await owner.post_form("/admin/keys", {"name": "ci", "scopes": ["read", "send"]})
    entries = await _audit(client)
    mine = [(e["action"], e["detail"]) for e in entries if e["actor"] == "owner1@example.org"]
    assert ("api-key.create", "name=ci; scopes=read,send") in mine
    assert ("person.invite", "role=viewer") in mine
    assert any(a == "sign_in" for a, _ in mine)
    html = (await owner.get("/admin/audit")).text
    assert "api-key.create" in html and "person.invite" in html


async def test_cookies_are_secure_behind_https(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(public_url="https://news.example.org")
    c = ConsoleClient(transport=app._transport, base_url="https://news.example.org")
    c.app = app.app
    await create_account(c.app, "ann@example.org", "owner")
    r = await sign_in(c, "ann@example.org")
    cookie = r.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_user_command_adds_lists_and_removes(db: str, tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", db)
    monkeypatch.setenv("TIDINGS_VAR_DIR", str(tmp_path / "var"))  # not ./var, shared by workers
    monkeypatch.setenv("TIDINGS_PUBLIC_URL", "http://news.test")
    runner = CliRunner()
    r = runner.invoke(cli, ["user", "add", "Owner@Example.org", "--role", "owner"])
    assert r.exit_code == 0, r.output
    assert re.search(r"http://news\.test/admin/password/[\w-]{40,}", r.output)
    r = runner.invoke(
        cli, ["user", "add", "ed@example.org", "--role", "editor", "--password-stdin"],
        input="a long enough password\n",
    )  # fmt: skip
    assert r.exit_code == 0 and "sign in at" in r.output
    r = runner.invoke(cli, ["user", "add", "ed@example.org", "--role", "editor"])
    assert r.exit_code == 1
    r = runner.invoke(cli, ["user", "add", "x@example.org", "--role", "boss"])
    assert r.exit_code == 1
    r = runner.invoke(cli, ["user", "list"])
    assert "ed@example.org\teditor" in r.output and "owner@example.org\towner" in r.output
    assert runner.invoke(cli, ["user", "remove", "owner@example.org"]).exit_code == 1  # last owner
    assert runner.invoke(cli, ["user", "remove", "ed@example.org"]).exit_code == 0
    assert "ed@example.org" not in runner.invoke(cli, ["user", "list"]).output


def test_serve_says_how_to_create_the_owner(
    db: str, tmp_path: Any, monkeypatch: Any, capsys: Any
) -> None:
    from app.cli import _owner_hint
    from app.config import Settings

    monkeypatch.setenv("TIDINGS_DATABASE_URL", db)
    monkeypatch.setenv("TIDINGS_VAR_DIR", str(tmp_path / "var"))
    _owner_hint(Settings())
    assert "tidings user add you@example.org --role owner" in capsys.readouterr().out
    CliRunner().invoke(cli, ["user", "add", "o@example.org", "--role", "owner"])
    _owner_hint(Settings())
    assert capsys.readouterr().out == ""
