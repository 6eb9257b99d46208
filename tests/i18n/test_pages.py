"""Public pages and the confirmation email in each list's language, through the real app."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app import tokens
from app.models import MailingList, Subscriber, Subscription
from tests.conftest import AppClient, make_list
from tests.smtp import SMTPServer
from tests.subscribers.test_form_browser import email_to

HTML = {"accept": "text/html"}
LANG_ATTR = re.compile(r'<html lang="([a-z]+)">')
CONFIRM_PATH = re.compile(r"http://tidings\.test(/subscribe/confirm/[A-Za-z0-9]+)")
# A few strings each page shows, per language.
SIGN_UP = {
    "en": ["Email address", "Skip to main content", ">Subscribe</button>"],
    "de": ["E-Mail-Adresse", "Zum Hauptinhalt springen", ">Abonnieren</button>"],
    "fr": ["Adresse e-mail", "Aller au contenu principal", ">S’abonner</button>"],
}
CONFIRM = {
    "en": ["Confirm your subscription", "Confirm my subscription"],
    "de": ["Bestätigen Sie Ihre Anmeldung", "Anmeldung bestätigen"],
    "fr": ["Confirmez votre abonnement", "Confirmer mon abonnement"],
}
CONFIRMED = {"en": "Subscription confirmed", "de": "Anmeldung bestätigt",
             "fr": "Abonnement confirmé"}  # fmt: skip
UNSUBSCRIBE = {
    "en": ["Stop receiving <strong>Letter</strong>?", "Unsubscribe from everything"],
    "de": ["<strong>Letter</strong> nicht mehr erhalten?", "Von allem abmelden"],
    "fr": ["Ne plus recevoir <strong>Letter</strong>\u00a0?", "Se désabonner de tout"],
}
UNSUBSCRIBED = {"en": "You are unsubscribed", "de": "Sie sind abgemeldet",
                "fr": "Vous êtes désabonné"}  # fmt: skip
PREFERENCES = {
    "en": ["Your subscriptions", "Save my choices", "Don't track me"],
    "de": ["Ihre Abonnements", "Auswahl speichern", "Meine Öffnungen und Klicks nicht erfassen"],
    "fr": ["Vos abonnements", "Enregistrer mes choix", "Ne pas suivre mes ouvertures"],
}
THANKS = {"en": "Check your inbox", "de": "Bitte sehen Sie in Ihrem Posteingang nach",
          "fr": "Consultez votre boîte de réception"}  # fmt: skip
SUBJECT = {
    "en": "Please confirm your subscription to Tidings",
    "de": "Bitte bestätigen Sie Ihre Anmeldung bei Tidings",
    "fr": "Veuillez confirmer votre abonnement à Tidings",
}
LANGS = ["en", "de", "fr"]


def page_lang(html: str) -> str:
    match = LANG_ATTR.search(html)
    assert match, html[:200]
    return match.group(1)


def shows(response: Any, lang: str, expected: list[str]) -> None:
    assert response.status_code == 200, response.text
    assert page_lang(response.text) == lang
    for text in expected:
        assert text in response.text, f"{lang}: {text!r} not on the page"


async def member(app: Any, email: str, slugs: list[str], issue: bool = False) -> str:
    """A confirmed subscriber of these lists; the unsubscribe token of a list-less link."""
    async with app.state.sessionmaker() as session:
        sub = Subscriber(email=email, email_key=email)
        session.add(sub)
        await session.flush()
        for slug in slugs:
            ml = (await session.execute(
                MailingList.__table__.select().where(MailingList.slug == slug)
            )).one()  # fmt: skip
            session.add(Subscription(subscriber_id=sub.id, list_id=ml.id, status="confirmed"))
        await session.commit()
        return tokens.make(app.state.settings.secret_key_value, "unsubscribe", sub.id, 0)


@pytest.mark.parametrize("lang", LANGS)
async def test_sign_up_confirm_and_thanks_in_the_lists_language(
    anon: AppClient, smtpd: SMTPServer, lang: str
) -> None:
    """A list in `lang`: its form, the email, the confirm pages and the thank-you page."""
    await make_list(anon, "letter", "Letter", language=None if lang == "en" else lang)
    shows(await anon.get("/subscribe"), lang, SIGN_UP[lang])
    email = f"reader-{lang}@example.org"
    r = await anon.post("/subscribe", data={"email": email, "list": "letter"}, headers=HTML)
    assert r.status_code == 303
    thanks = await anon.get(r.headers["location"])
    shows(thanks, lang, [THANKS[lang]])

    message = await email_to(smtpd, email)
    assert str(message["Subject"]) == SUBJECT[lang]
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert f'lang="{lang}"' in html and CONFIRM[lang][1] in html
    assert CONFIRM[lang][0] in text
    path = CONFIRM_PATH.search(text)
    assert path, text
    shows(await anon.get(path.group(1)), lang, CONFIRM[lang])
    shows(await anon.post(path.group(1)), lang, [CONFIRMED[lang]])


async def test_the_german_confirmation_email_reads_german(
    anon: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(anon, "brief", "Der Brief", language="de")
    r = await anon.post("/api/v1/subscribe", json={"email": "ute@example.de", "lists": ["brief"]})
    assert r.status_code == 202
    message = await email_to(smtpd, "ute@example.de")
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "Bitte bestätigen Sie, dass Sie Der Brief erhalten möchten." in text
    assert "Bestätigen Sie Ihre Anmeldung: http://tidings.test/subscribe/confirm/" in text
    assert "Falls Sie dies nicht angefordert haben" in text and "Please" not in text


@pytest.mark.parametrize("lang", LANGS)
async def test_unsubscribe_and_preference_pages_in_the_lists_language(
    anon: AppClient, lang: str
) -> None:
    await make_list(anon, "letter", "Letter", language=None if lang == "en" else lang)
    token = await member(anon.app, f"u-{lang}@example.org", ["letter"])
    shows(await anon.get(f"/u/{token}"), lang, [UNSUBSCRIBE[lang][1], PREFERENCES[lang][1]])
    shows(await anon.get(f"/preferences/{token}"), lang, PREFERENCES[lang])
    shows(await anon.post(f"/u/{token}"), lang, [UNSUBSCRIBED[lang]])


@pytest.mark.parametrize("lang", LANGS)
async def test_unsubscribe_names_the_issues_list_in_its_language(
    anon: AppClient, lang: str
) -> None:
    from tests.subscribers import factory

    world = await factory.build(anon.app)
    async with anon.app.state.sessionmaker() as session:
        news = await session.get(MailingList, world.lists["news"])
        assert news is not None
        news.name, news.language = "Letter", None if lang == "en" else lang
        await session.commit()
    token = factory.token(anon.app, world.subscribers["ann@example.org"], world.issue_id)
    shows(await anon.get(f"/u/{token}"), lang, UNSUBSCRIBE[lang])


@pytest.mark.parametrize("lang", LANGS)
async def test_the_hosted_form_takes_an_explicit_language(anon: AppClient, lang: str) -> None:
    await make_list(anon, "one", language="de")
    await make_list(anon, "two", language="fr")
    shows(await anon.get("/subscribe"), "en", SIGN_UP["en"])  # mixed lists: the default
    form = await anon.get(f"/subscribe?lang={lang}")
    shows(form, lang, SIGN_UP[lang])
    assert f'<input type="hidden" name="lang" value="{lang}">' in form.text
    # An error keeps the language chosen, its message translated.
    bad = await anon.post("/subscribe", data={"email": "nope", "list": "one", "lang": lang},
                          headers=HTML)  # fmt: skip
    assert bad.status_code == 422 and page_lang(bad.text) == lang
    error = {"en": "Enter a valid email address", "de": "Geben Sie eine gültige E-Mail-Adresse",
             "fr": "Saisissez une adresse e-mail valide"}[lang]  # fmt: skip
    assert error in bad.text


async def test_one_list_of_many_and_unknown_languages(anon: AppClient) -> None:
    await make_list(anon, "one", language="de")
    await make_list(anon, "two", language="fr")
    shows(await anon.get("/subscribe?list=two"), "fr", SIGN_UP["fr"])  # about that one list
    shows(await anon.get("/subscribe?lang=xx"), "en", SIGN_UP["en"])  # not shipped: ignored
    token = await member(anon.app, "both@example.org", ["one", "two"])
    shows(await anon.get(f"/preferences/{token}"), "en", PREFERENCES["en"])


async def test_the_installation_language_is_the_default(app_factory: Any) -> None:
    client = await app_factory(language="fr")
    await make_list(client, "letter", "Letter")
    await make_list(client, "other", "Other", language="de")
    shows(await client.get("/subscribe"), "fr", SIGN_UP["fr"])  # de and the default: fr
    shows(await client.get("/subscribe?list=other"), "de", SIGN_UP["de"])
    missing = await client.get("/u/not-a-token")
    assert missing.status_code == 404 and page_lang(missing.text) == "fr"
    assert "Ce lien n’est pas valide" in missing.text


async def test_lists_api_takes_and_returns_a_shipped_language(client: AppClient) -> None:
    r = await client.post("/api/v1/lists", json={"slug": "brief", "name": "B", "language": "de"})
    assert r.status_code == 201 and r.json()["language"] == "de"
    r = await client.post("/api/v1/lists", json={"slug": "other", "name": "O"})
    assert r.status_code == 201 and r.json()["language"] is None
    bad = await client.post("/api/v1/lists", json={"slug": "x", "name": "X", "language": "xx"})
    assert bad.status_code == 422
    detail = bad.json()["detail"][0]
    assert detail["loc"][-1] == "language" and "en, de, fr" in detail["msg"]
    r = await client.patch("/api/v1/lists/brief", json={"language": "fr"})
    assert r.status_code == 200 and r.json()["language"] == "fr"
    r = await client.patch("/api/v1/lists/brief", json={"name": "Brief"})
    assert r.json()["language"] == "fr"  # untouched when not named
    r = await client.patch("/api/v1/lists/brief", json={"language": None})
    assert r.status_code == 200 and r.json()["language"] is None
    assert (await client.patch("/api/v1/lists/brief", json={"language": "EN"})).status_code == 422
    listed = (await client.get("/api/v1/lists")).json()["items"]
    assert {i["slug"]: i["language"] for i in listed} == {"brief": None, "other": None}


async def test_an_admin_addition_is_asked_to_confirm_in_the_lists_language(
    client: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(client, "lettre", "La Lettre", language="fr")
    body = {"email": "zoe@example.fr", "lists": ["lettre"], "subscription_status": "pending"}
    assert (await client.post("/api/v1/subscribers", json=body)).status_code == 201
    message = await email_to(smtpd, "zoe@example.fr")
    assert str(message["Subject"]) == SUBJECT["fr"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "Veuillez confirmer que vous souhaitez recevoir La Lettre." in text
