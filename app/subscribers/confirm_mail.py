"""The confirmation email compiled once per (language, lists, branding, sender), then filled.

Every confirmation of one list in one language is the same message but for its To
header, Message-ID, Date and the confirm link, so the Jinja render, the MJML, the
quoted-printable encoding of both parts and the folding of From and Subject (an issue's
MessageSkeleton, less its list headers) are done once and kept (a small LRU); each
message then costs the encoding of one URL and a join, ~50 us. render_system_email did
all of it per message (~1.1 ms, a third of it in the standard library's header
registry). The link's place is found by rendering with a sentinel URL; a template where
it does not appear in both parts falls back to the per-message render.
"""

from __future__ import annotations

import html
import secrets
from collections import OrderedDict
from collections.abc import Callable
from email.utils import make_msgid
from typing import Any

from app.branding import Branding
from app.issues.layout import load_system
from app.issues.mime import (
    MessageSkeleton,
    PartChunks,
    clean_header_text,
    date_header,
    format_address,
    qp_piece,
)

# Nothing in a template or a translation spells this; escaping leaves it as it is.
SENTINEL = "https://sentinel.invalid/confirm-" + secrets.token_hex(8)
_MAX_COMPILED = 64


class CompiledConfirmation:
    """One confirmation message with its link, To, Message-ID and Date left open."""

    def __init__(self, *, from_addr: str, domain: str, context: dict[str, Any]) -> None:
        ctx = {**context, "confirm_url": SENTINEL}
        system = load_system("confirm", frozenset(context) | {"confirm_url"})
        subject = clean_header_text(system.subject.render(ctx))
        page, text = system.render(ctx)
        self.domain = domain
        self.html = PartChunks(_cut(page, html.escape(SENTINEL, quote=True)))
        self.text = PartChunks(_cut(text, SENTINEL))
        # An issue's fixed bytes, less its List-Unsubscribe-Post line: the same framing.
        skeleton = MessageSkeleton(from_addr=from_addr, subject=subject, list_id="")
        first, _, framing = skeleton.tail_headers.partition(b"\r\n")
        self.ok = (len(self.html.chunks) > 1 and len(self.text.chunks) > 1
                   and first.startswith(b"List-Unsubscribe-Post:"))  # fmt: skip
        self.from_line = skeleton.from_line
        self.subject_line = skeleton.subject_line or b""
        self.mime = b"MIME-Version: 1.0\r\nAuto-Submitted: auto-generated\r\n" + framing
        self.between, self.end = skeleton.between, skeleton.end

    def message(self, *, to_email: str, to_name: str, url: str) -> bytes:
        """The whole message for one person and link, CRLF throughout."""
        text_piece, html_piece = qp_piece(url), qp_piece(html.escape(url, quote=True))
        text = self.text.joined([text_piece] * (len(self.text.chunks) // 2))
        page = self.html.joined([html_piece] * (len(self.html.chunks) // 2))
        message_id = make_msgid(domain=self.domain).encode("ascii")
        to = format_address(to_name, to_email).encode("utf-8")
        return b"".join((
            b"Date: ", date_header(), b"\r\n", self.from_line,
            b"To: ", to, b"\r\n", self.subject_line,
            b"Message-ID: ", message_id, b"\r\n",
            self.mime, text, self.between, page, self.end,
        ))  # fmt: skip


def _cut(part: str, needle: str) -> list[str]:
    """[static, slot, static, ...]: the part cut where the link goes (PartChunks' shape)."""
    pieces = part.split(needle)
    out = [pieces[0]]
    for piece in pieces[1:]:
        out += ["", piece]
    return out


_compiled: OrderedDict[tuple[Any, ...], CompiledConfirmation] = OrderedDict()


def compiled(
    *, from_addr: str, domain: str, lang: str, lists: list[str], brand: Branding,
    words: Callable[[dict[str, Any]], dict[str, str]],
) -> CompiledConfirmation:  # fmt: skip
    """The compiled confirmation for these inputs, made on first use (LRU of _MAX_COMPILED).

    `words(organisation)` gives the translated text (emails.confirmation_text), asked for
    only then: it follows from the language, the branding and the lists, all in the key.
    """
    key = (from_addr, domain, lang, tuple(lists), brand)  # Branding: frozen, compared by value
    found = _compiled.get(key)
    if found is not None:
        _compiled.move_to_end(key)
        return found
    organisation = brand.email_context()
    context = {"lists": lists, "organisation": organisation, "lang": lang,
               "text": words(organisation)}  # fmt: skip
    found = _compiled[key] = CompiledConfirmation(
        from_addr=from_addr, domain=domain, context=context
    )
    if len(_compiled) > _MAX_COMPILED:
        _compiled.popitem(last=False)
    return found
