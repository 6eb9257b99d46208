"""The console's list form chooses a list's language: a select of the shipped catalogues."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.conftest import AppClient
from tests.console.conftest import ConsoleClient

ConsoleAs = Callable[..., Awaitable[ConsoleClient]]


async def test_editor_sets_and_clears_a_lists_language(
    client: AppClient, console_as: ConsoleAs
) -> None:
    editor = await console_as("editor")
    csrf = editor.csrf
    form = await editor.get("/admin/lists")
    assert '<select id="f-language" name="language"' in form.text
    assert '<option value="de" lang="de">Deutsch</option>' in form.text
    assert "The installation's (English)" in form.text
    created = await editor.post("/admin/lists", data={"csrf_token": csrf, "slug": "brief",
                                "name": "Brief", "public": "on", "language": "de"})  # fmt: skip
    assert created.status_code == 303, created.text
    lists = (await client.get("/api/v1/lists")).json()["items"]
    assert [m["language"] for m in lists] == ["de"]
    page = await editor.get("/admin/lists/brief")
    assert '<option value="de" lang="de" selected>Deutsch</option>' in page.text
    assert "<td>Deutsch</td>" in (await editor.get("/admin/lists")).text
    # The public page follows at once.
    assert '<html lang="de">' in (await client.get("/subscribe")).text

    bad = await editor.post("/admin/lists/brief", data={"csrf_token": csrf, "name": "Brief",
                            "language": "xx"})  # fmt: skip
    assert bad.status_code == 422 and "en, de, fr" in bad.text
    assert (await client.get("/api/v1/lists/brief")).json()["language"] == "de"
    cleared = await editor.post("/admin/lists/brief", data={"csrf_token": csrf, "name": "Brief",
                                "language": ""})  # fmt: skip
    assert cleared.status_code == 303
    assert (await client.get("/api/v1/lists/brief")).json()["language"] is None
