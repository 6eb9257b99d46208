"""The settings page: branding saved by owners only, the environment with secrets hidden,
the DKIM record from the configured key, webhook URLs and the embed snippet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app import branding
from app.setup_report import dkim_public_value
from tests.console.conftest import ConsoleClient, create_account, csrf_of, sign_in
from tests.media.images import image_bytes

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def fresh_branding() -> Iterator[None]:
    branding.reset()
    yield
    branding.reset()


def rsa_key(path: Path) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    path.write_bytes(pem)
    return pem


async def test_settings_page_shows_the_setup_without_secrets(
    app_factory: Any, tmp_path: Path
) -> None:
    pem = rsa_key(tmp_path / "dkim.pem")
    app_client = await app_factory(
        smtp_url="smtp://mailer:hunter2secret@127.0.0.1:2525",
        dkim_domain="news.example.org", dkim_selector="s1", dkim_key_file=tmp_path / "dkim.pem",
        **{"TIDINGS_FROM": "News <hello@news.example.org>"},
    )  # fmt: skip
    owner = ConsoleClient(transport=app_client._transport, base_url=str(app_client.base_url))
    await create_account(app_client.app, "boss@example.org", "owner")
    assert (await sign_in(owner, "boss@example.org")).status_code == 303
    html = (await owner.get("/admin/settings")).text
    assert "hunter2secret" not in html and "mailer:***@127.0.0.1:2525" in html
    assert "s1._domainkey.news.example.org" in html
    assert dkim_public_value(pem) in html
    assert "_dmarc.news.example.org" in html and "v=spf1" in html
    assert "http://tidings.test/webhooks/ses" in html and "/webhooks/mailgun" in html
    assert "http://tidings.test/api/v1/subscribe" in html


async def test_owner_saves_branding_and_it_reaches_the_sign_up_page(
    client: Any, anon: Any, console_as: Any
) -> None:
    files = {"file": ("logo.png", image_bytes("PNG", (300, 80)), "x")}
    logo = await client.post("/api/v1/media", files=files)
    owner = await console_as("owner")
    owner.csrf = csrf_of((await owner.get("/admin/settings")).text)
    form = {"name": "Riverside News", "address": "1 Quay Road", "accent": "#225588",
            "logo_media_id": str(logo.json()["id"])}  # fmt: skip
    bad = await owner.post_form("/admin/settings/branding", {**form, "accent": "blue"})
    assert bad.status_code == 422 and "#rrggbb" in bad.text
    assert (await owner.post_form("/admin/settings/branding", form)).status_code == 303
    signup = (await anon.get("/subscribe")).text
    assert "Riverside News" in signup and logo.json()["url"] in signup
    editor = await console_as("editor")
    editor.csrf = csrf_of((await editor.get("/admin/settings")).text)
    refused = await editor.post_form("/admin/settings/branding", {**form, "name": "Hijacked"})
    assert refused.status_code == 403
    assert (await client.get("/api/v1/branding")).json()["name"] == "Riverside News"
