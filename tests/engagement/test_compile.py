"""Links and the open pixel are rewritten when an issue compiles; per recipient only tokens."""

from __future__ import annotations

import email
import re
from dataclasses import replace
from email.message import Message

from app.engagement import tokens
from app.engagement.links import Tracking
from app.issues.rendering import IssueContent, Recipient, compile_issue

SITE = "https://news.example.org"
SECRET = "s" * 40
BODY = (
    "# Hello {{ subscriber.name }}\n\n"
    "Read [the story](https://example.org/story?a=1&b=2) and [the other](https://example.org/b).\n\n"
    "Again: [the story](https://example.org/story?a=1&b=2). "
    "[Personal](https://example.org/p?e={{ subscriber.email }}) "
    f"[Our archive]({SITE}/archive) [write](mailto:editor@example.org)\n"
)
CONTENT = IssueContent(
    id=7, subject="Week", preheader="", from_addr="News <news@example.org>",
    template="newsletter", format="markdown", body=BODY, list_id="News <news.example.org>",
)  # fmt: skip
READER = Recipient(
    email="ann@example.com", name="Ann", attributes={},
    unsubscribe_url=f"{SITE}/u/UNSUB", preferences_url=f"{SITE}/preferences/UNSUB",
    message_id="<7.42.abc@example.org>", delivery_id=42, tracked=True,
)  # fmt: skip


def _compiled(opens: bool = True, clicks: bool = True) -> tuple[object, Tracking]:
    tracking = Tracking(issue_id=7, site_url=SITE, secret=SECRET, opens=opens, clicks=clicks)
    compiled = compile_issue(CONTENT, archive_url=f"{SITE}/archive/7", site_url=SITE,
                             tracking=tracking)  # fmt: skip
    return compiled, tracking


def _parts(data: bytes) -> tuple[str, str]:
    msg: Message = email.message_from_bytes(data)
    text = html = ""
    for part in msg.walk():
        payload = part.get_payload(decode=True)
        if part.get_content_type() == "text/plain":
            text = payload.decode()
        elif part.get_content_type() == "text/html":
            html = payload.decode()
    return html, text


def test_links_get_indexes_once_and_tokens_per_recipient() -> None:
    compiled, tracking = _compiled()
    links = dict(tracking.links())
    assert links[1] == SITE  # the hidden link
    assert sorted(u for i, u in links.items() if i >= 2) == [
        "https://example.org/b", "https://example.org/story?a=1&b=2"
    ]  # fmt: skip
    html, text = _parts(compiled.render_message(READER))  # type: ignore[attr-defined]
    redirects = re.findall(rf'href="{SITE}/r/([A-Za-z0-9_-]+)"', html)
    seen = {tokens.read(SECRET, "click", t) for t in redirects}
    assert {(7, 42, i) for i in links} == seen  # every link, the hidden one too
    pixel = re.findall(rf'<img src="{SITE}/o/([A-Za-z0-9_-]+)"', html)
    assert [tokens.read(SECRET, "open", t) for t in pixel] == [(7, 42, 0)]
    # Never rewritten: personal links (slots), our own pages, mailto.
    assert f'href="{SITE}/u/UNSUB"' in html and f'href="{SITE}/preferences/UNSUB"' in html
    assert f'href="{SITE}/archive/7"' in html and f'href="{SITE}/archive"' in html
    assert "https://example.org/p?e=ann@example.com" in html and "mailto:editor@" in html
    # The plain-text part's links are tracked the same way.
    assert "https://example.org/story" not in text and f"{SITE}/r/" in text
    text_tokens = re.findall(rf"{SITE}/r/([A-Za-z0-9_-]+)", text)
    assert {tokens.read(SECRET, "click", t)[2] for t in text_tokens} <= set(links)  # type: ignore[index]


def test_a_reader_who_said_no_gets_the_untracked_message() -> None:
    compiled, _ = _compiled()
    plain = compile_issue(CONTENT, archive_url=f"{SITE}/archive/7", site_url=SITE)
    no = replace(READER, tracked=False)
    html, text = _parts(compiled.render_message(no))  # type: ignore[attr-defined]
    assert "/r/" not in html and "/o/" not in html and "/r/" not in text
    assert (html, text) == _parts(plain.render_message(no))
    test_send = replace(READER, delivery_id=None)
    assert "/o/" not in _parts(compiled.render_message(test_send))[0]  # type: ignore[attr-defined]


def test_opens_only_or_clicks_only() -> None:
    compiled, _ = _compiled(opens=True, clicks=False)
    html, _ = _parts(compiled.render_message(READER))  # type: ignore[attr-defined]
    assert "/o/" in html and "/r/" not in html
    compiled, _ = _compiled(opens=False, clicks=True)
    html, _ = _parts(compiled.render_message(READER))  # type: ignore[attr-defined]
    assert "/o/" not in html and "/r/" in html
