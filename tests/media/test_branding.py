"""Branding set through the API reaches the email layout and every public page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app import branding
from tests.issues.factory import make_issue, make_list
from tests.media.images import image_bytes

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def fresh_branding() -> Iterator[None]:
    branding.reset()
    yield
    branding.reset()


async def test_defaults_come_from_the_environment(app_factory: Any) -> None:
    client = await app_factory(organisation_name="Council Partnership")
    answer = (await client.get("/api/v1/branding")).json()
    assert answer["name"] == "Council Partnership"
    assert (answer["logo_url"], answer["accent"]) == ("", branding.DEFAULT_ACCENT)


async def test_saved_branding_reaches_emails_and_public_pages(client: Any, anon: Any) -> None:
    logo = (
        await client.post(
            "/api/v1/media", files={"file": ("logo.png", image_bytes("PNG", (800, 200)), "x/y")}
        )
    ).json()
    saved = await client.put(
        "/api/v1/branding",
        json={
            "name": "Riverside <Partnership>",
            "address": "1 High Street, Riverside",
            "accent": "#AA3300",
            "logo_media_id": logo["id"],
        },
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["logo_url"] == logo["email_url"]
    await make_list(client, "weekly")
    issue = await make_issue(client, lists=["weekly"])
    html = (await client.get(f"/api/v1/issues/{issue['id']}/preview")).text
    assert logo["email_url"] in html
    assert "Riverside &lt;Partnership&gt;" in html and "<Partnership>" not in html
    assert "1 High Street, Riverside" in html
    assert "#aa3300" in html
    text = (await client.get(f"/api/v1/issues/{issue['id']}/preview?format=text")).text
    assert "Riverside <Partnership>" in text
    page = (await anon.get("/subscribe")).text
    assert "Riverside &lt;Partnership&gt;" in page
    assert logo["email_url"] in page and "#aa3300" in page


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("accent", "red;}</style><script>"),
        ("accent", "#12345"),
        ("name", ""),
        ("name", "two\nlines"),
        ("logo_media_id", 999),
        ("address", "x" * 501),
    ],
)
async def test_bad_branding_is_422_and_changes_nothing(client: Any, field: str, value: Any) -> None:
    body = {"name": "Acme", "address": "", "accent": "#112233", "logo_media_id": None}
    answer = await client.put("/api/v1/branding", json={**body, field: value})
    assert answer.status_code == 422, answer.text
    assert (await client.get("/api/v1/branding")).json()["name"] != "Acme"
