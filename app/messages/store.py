"""The messages table (migrations 0013, 0014) and how one message is rendered.

A row is what the request carried: its idempotency key and hash, the address, template,
subject, data and route. Where the message stands (queued, sending, sent, failed, the
attempts and the last error) is its delivery's, in `deliveries` (message_ref = id).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table

from app import branding
from app.db import UTCDateTime
from app.issues import layout, layout_registry
from app.issues.mime import clean_header_text, format_address, simple_message
from app.issues.sandbox import make_env
from app.issues.templating import SlottedTemplate

_meta = MetaData()
messages = Table(
    "messages",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("idempotency_key", String(200)),
    Column("request_hash", String(64), nullable=False),
    Column("email", String(320), nullable=False),
    Column("subscriber_id", Integer),
    Column("template", String(64), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("data", JSON, nullable=False),
    Column("smtp_route", JSON),  # the server names it goes through; None: any
    Column("created_at", UTCDateTime, nullable=False),
)

KEYS = frozenset({"data", "subject", "organisation"})  # what a message's template sees
# A stored layout is an issue's: its {{ body }} is the message's data.text (or subject),
# and what only an issue has (list names, archive and unsubscribe links) is empty.
STORED_KEYS = KEYS | {"body"}


def template_names() -> list[str]:
    """What a message's `template` may name: email_templates/ folders with email.mjml, then
    the layouts stored in the console."""
    disk = sorted(p.parent.name for p in layout.TEMPLATES_DIR.glob("*/email.mjml"))
    return disk + [n for n in layout_registry.stored_names() if n not in disk]


def _template(name: str) -> layout.SystemEmail:
    try:
        return layout.load_system(name, KEYS)
    except FileNotFoundError:
        stored = layout_registry.get(name)
        if stored is None:
            known = ", ".join(template_names())
            raise FileNotFoundError(
                f"no message template {name!r}: neither a folder of email_templates/ with"
                f" email.mjml nor a stored layout (known: {known})"
            ) from None
    dynamic = STORED_KEYS - {"organisation"}
    return layout.SystemEmail(
        subject=make_env(autoescape=False).from_string("{{ subject }}"),
        html=SlottedTemplate(stored.mjml, tag="S", autoescape=True, dynamic=dynamic),
        text=SlottedTemplate(stored.text or "{{ body }}", tag="X", autoescape=False,
                             dynamic=dynamic),
    )  # fmt: skip


def render(
    *, template: str, subject: str, data: dict[str, Any], email: str, from_addr: str,
    message_id: str,
) -> bytes:  # fmt: skip
    """The message as RFC 5322 bytes; `data` and `subject` reach the sandbox by those names.

    `template` is a folder of email_templates/ with email.mjml (like `message`), else a
    layout stored in the console (a folder wins, as for issues); neither raises
    FileNotFoundError. `message_id` is its delivery's (compose.message_id), so
    a bounce of it finds the delivery as a bulk one's does.
    """
    ctx = {"organisation": branding.current().email_context(), "data": data, "subject": subject,
           "body": str(data.get("text") or subject)}  # fmt: skip
    system = _template(template)
    html, text = system.render(ctx)
    return simple_message(
        from_addr=from_addr,
        to=format_address("", email),
        subject=clean_header_text(system.subject.render(ctx)),
        message_id=message_id,
        text=text,
        html=html,
    )
