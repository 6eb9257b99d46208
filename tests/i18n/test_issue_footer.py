"""The words a layout adds around an issue follow its lists' language; the body never does."""

from __future__ import annotations

import pytest

from tests.conftest import AppClient

FOOTER = {
    "en": ["You are receiving this because you subscribed to Letter.", ">Unsubscribe</a>",
           "Manage your preferences", "View in your browser"],
    "de": ["Sie erhalten diese E-Mail, weil Sie Letter abonniert haben.", ">Abmelden</a>",
           "Einstellungen verwalten", "Im Browser ansehen"],
    "fr": ["Vous recevez cet e-mail parce que vous êtes abonné à Letter.", ">Se désabonner</a>",
           "Gérer vos préférences", "Voir dans votre navigateur"],
}  # fmt: skip
TEXT_LABEL = {"en": "Unsubscribe: http", "de": "Abmelden: http", "fr": "Se désabonner\u00a0: http"}


async def issue_to(client: AppClient, language: str | None) -> int:
    body = {"slug": "letter", "name": "Letter", "language": language}
    assert (await client.post("/api/v1/lists", json=body)).status_code == 201
    issue = {"subject": "Hello", "lists": ["letter"], "format": "markdown",
             "body": "Hello, this stays in English."}  # fmt: skip
    r = await client.post("/api/v1/issues", json=issue)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@pytest.mark.parametrize("lang", ["en", "de", "fr"])
async def test_the_footer_speaks_the_lists_language(client: AppClient, lang: str) -> None:
    issue_id = await issue_to(client, None if lang == "en" else lang)
    html = (await client.get(f"/api/v1/issues/{issue_id}/preview?format=html")).text
    assert f'<html lang="{lang}"' in html
    for words in FOOTER[lang]:
        assert words in html, f"{lang}: {words!r}"
    assert "Hello, this stays in English." in html
    text = (await client.get(f"/api/v1/issues/{issue_id}/preview?format=text")).text
    assert FOOTER[lang][0] in text and TEXT_LABEL[lang] in text


async def test_the_installation_language_without_one_on_the_list(app_factory: object) -> None:
    client = await app_factory(language="de")  # type: ignore[operator]
    issue_id = await issue_to(client, None)
    html = (await client.get(f"/api/v1/issues/{issue_id}/preview?format=html")).text
    assert '<html lang="de"' in html and FOOTER["de"][0] in html


async def test_the_archive_in_french_with_its_dates(client: AppClient, anon: AppClient) -> None:
    """The web version's footer and the archive index (a date) in the lists' language."""
    from datetime import UTC, datetime

    from tests.issues.factory import set_issue

    issue_id = await issue_to(client, "fr")
    started = datetime(2026, 6, 3, 9, 0, tzinfo=UTC)
    await set_issue(client, issue_id, status="sent", started_at=started, finished_at=started)
    page = (await anon.get(f"/archive/{issue_id}")).text
    assert "Ceci est la version web d’un numéro de Letter." in page
    assert ">abonnez-vous ici</a>" in page and "Se désabonner" not in page
    assert "3 juin 2026" in page
    # The index is about every list: the installation's language (English here).
    index = (await anon.get("/archive")).text
    assert '<html lang="en">' in index and "3 June 2026" in index
