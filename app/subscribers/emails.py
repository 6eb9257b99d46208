"""The double opt-in confirmation email: its signed link, its message, and a bounded send."""

from __future__ import annotations

import asyncio
import functools
import logging
from email.utils import parseaddr
from typing import Any

from app import branding, i18n, tokens
from app.config import Settings
from app.delivery.transport import DeliveryError, Envelope, Mailer
from app.subscribers import confirm_mail

log = logging.getLogger(__name__)

CONFIRM_MAX_AGE = 7 * 24 * 3600  # a confirmation link works for a week
# An SMTP server that stalls must not hold a sign-up (or a browser) hostage: past this the
# subscription simply stays pending and the person can sign up again for a new link.
SEND_TIMEOUT = 10.0


def confirm_token(settings: Settings, subscriber_id: int) -> str:
    return tokens.make(settings.secret_key_value, "confirm", subscriber_id)


def read_confirm_token(settings: Settings, token: str) -> int | None:
    """The subscriber id in a valid, unexpired confirm token, else None."""
    values = tokens.read(
        settings.secret_key_value, "confirm", token, count=1, max_age=CONFIRM_MAX_AGE
    )
    return values[0] if values else None


def confirm_url(settings: Settings, subscriber_id: int) -> str:
    base = settings.public_url.rstrip("/")
    return f"{base}/subscribe/confirm/{confirm_token(settings, subscriber_id)}"


def confirmation_text(lang: str, *, organisation: str, list_names: list[str]) -> dict[str, str]:
    """The words of the confirmation email in `lang`, for email_templates/confirm/."""
    _ = i18n.translations(lang).gettext
    lists = ", ".join(list_names)
    intro = (
        _("Please confirm that you want to receive %(lists)s.") % {"lists": lists}
        if list_names
        else _("Please confirm that you want to receive our newsletter.")
    )
    return {
        "subject": _("Please confirm your subscription to %(organisation)s")
        % {"organisation": organisation},
        "title": _("Confirm your subscription"),
        "preview": _("One click and you are on the list."),
        "intro": intro,
        "button": _("Confirm my subscription"),
        "link": _("Or open this link:"),
        "text_link": _("Confirm your subscription:"),
        "ignore": _(
            "If you did not ask for this, ignore this email: nothing happens until you confirm."
        ),
    }


def confirmation_envelope(
    settings: Settings, *, subscriber_id: int, email: str, name: str | None,
    list_names: list[str], language: str | None = None,
) -> Envelope:  # fmt: skip
    """The confirmation message for one subscriber, in the lists' language, ready for a transport.

    `language` is the lists' (app.i18n.language_of); the installation's when None. Filled
    into the message compiled once per language, lists and branding (confirm_mail.py).
    """
    lang = language if language and i18n.is_shipped(language) else i18n.default_language(settings)
    brand = branding.current(settings)
    sender = _sender(settings.from_)
    compiled = confirm_mail.compiled(
        from_addr=settings.from_,
        domain=sender.rpartition("@")[2] or "localhost",  # as render_system_email's Message-ID
        lang=lang,
        lists=list_names,
        brand=brand,
        words=lambda organisation: confirmation_text(
            lang, organisation=organisation["name"], list_names=list_names
        ),
    )
    url = confirm_url(settings, subscriber_id)
    if compiled.ok:
        data = compiled.message(to_email=email, to_name=name or "", url=url)
    else:  # a template without the link in both parts: rendered whole, as it always was
        data = _rendered(settings, email=email, name=name, url=url, lang=lang,
                         organisation=brand.email_context(), list_names=list_names)  # fmt: skip
    return Envelope(sender=sender, recipients=(email,), data=data)


@functools.lru_cache(maxsize=16)
def _sender(from_: str) -> str:
    """The envelope sender of system emails: TIDINGS_FROM's address.

    Keyed on TIDINGS_FROM alone; Settings.sender_domain is "localhost" exactly when there
    is no address to take, hence the fallback.
    """
    return parseaddr(from_)[1] or "newsletter@localhost"


def _rendered(
    settings: Settings, *, email: str, name: str | None, url: str, lang: str,
    organisation: dict[str, Any], list_names: list[str],
) -> bytes:  # fmt: skip
    from app.issues.rendering import render_system_email

    return render_system_email(
        "confirm",
        to_email=email,
        to_name=name or "",  # the To header has no display name then
        from_addr=settings.from_,
        context={
            "confirm_url": url,
            "lists": list_names,
            "organisation": organisation,
            "lang": lang,
            "text": confirmation_text(
                lang, organisation=organisation["name"], list_names=list_names
            ),
        },
    )


def subscriptions_language(settings: Settings, subscriber: Any) -> str:
    """The language of a confirmation for all of a subscriber's lists (admin additions)."""
    languages = [s.mailing_list.language for s in subscriber.subscriptions]
    return i18n.language_of(languages, i18n.default_language(settings))


async def confirm(
    settings: Settings, mailer: Mailer, *, subscriber_id: int, email: str, name: str | None,
    list_names: list[str], language: str | None = None,
) -> None:  # fmt: skip
    """Build one confirmation and send it: every sign-up path's work after its answer.

    Run once the write is committed, so the link never names a row a rollback undid.
    """
    envelope = confirmation_envelope(
        settings, subscriber_id=subscriber_id, email=email, name=name,
        list_names=list_names, language=language,
    )  # fmt: skip
    await send_confirmation(mailer, envelope)


async def send_confirmation(mailer: Mailer, envelope: Envelope) -> bool:
    """Send it within SEND_TIMEOUT; a failure is logged, never raised: the sign-up stands."""
    try:
        async with asyncio.timeout(SEND_TIMEOUT):  # no task of its own, unlike wait_for
            await mailer.send(envelope)
    except (DeliveryError, OSError, TimeoutError) as exc:
        log.warning("confirmation email not sent (%s): %s", type(exc).__name__, exc)
        return False
    except Exception:  # any other transport failure must not lose the sign-up either
        log.exception("confirmation email not sent")
        return False
    return True
