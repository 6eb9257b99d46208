"""Each tracked link carries the token of its own place: followed through the link table, the
n-th link of a tracked message leads where the n-th link of the untracked one does, in the
HTML and the text part, for every reader of a send."""

from __future__ import annotations

import email
import re
from dataclasses import replace

from app.engagement import tokens
from app.engagement.links import Tracking
from app.issues.rendering import IssueContent, Recipient, compile_issue

SITE = "https://news.example.org"
SECRET = "p" * 40
BODY = "\n\n".join(
    f"## Part {n}, {{{{ subscriber.name }}}}\n\n[story {n}](https://example.org/s/{n}) and "
    f"[talk {n}](https://forum.example.org/t/{n}); again [story {n}](https://example.org/s/{n})."
    for n in range(1, 8)
)
CONTENT = IssueContent(
    id=9, subject="Week", preheader="", from_addr="News <news@example.org>",
    template="newsletter", format="markdown", body=BODY, list_id="News <news.example.org>",
)  # fmt: skip
HREF = re.compile(r'<a\b[^>]*?\bhref="([^"]+)"')
TEXT_URL = re.compile(r"https?://[^\s<>()\[\]\"']+")


def _parts(data: bytes) -> tuple[str, str]:
    msg = email.message_from_bytes(data)
    found = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk()
             if not p.is_multipart()}  # fmt: skip
    return found["text/html"], found["text/plain"]


def _followed(url: str, links: dict[int, str], delivery: int) -> str:
    """Where a URL of the message leads: through the redirect if it is one."""
    if not url.startswith(f"{SITE}/r/"):
        return url
    read = tokens.read(SECRET, "click", url[len(SITE) + 3 :])
    assert read is not None and read[:2] == (9, delivery), url
    return links[read[2]]


def test_every_link_leads_where_the_untracked_one_does() -> None:
    tracking = Tracking(issue_id=9, site_url=SITE, secret=SECRET, opens=True, clicks=True)
    archive = f"{SITE}/archive/9"
    tracked = compile_issue(CONTENT, archive_url=archive, site_url=SITE, tracking=tracking)
    plain = compile_issue(CONTENT, archive_url=archive, site_url=SITE)
    links = dict(tracking.links())
    assert len(links) == 15  # the hidden link and 14 distinct URLs
    for delivery in (1, 2, 77, 2**40):
        reader = Recipient(
            email=f"r{delivery}@example.com", name=f"Reader {delivery}", attributes={},
            unsubscribe_url=f"{SITE}/u/U{delivery}", preferences_url=f"{SITE}/preferences/P",
            message_id=f"<9.{delivery}@example.org>", delivery_id=delivery, tracked=True,
        )  # fmt: skip
        html, text = _parts(tracked.render_message(reader))
        html_plain, text_plain = _parts(plain.render_message(replace(reader, tracked=False)))
        hrefs = [_followed(u, links, delivery) for u in HREF.findall(html)]
        # The hidden link is the one anchor the untracked message lacks.
        assert links[1] in hrefs
        hrefs.remove(links[1])
        assert hrefs == HREF.findall(html_plain)
        urls = [_followed(u, links, delivery) for u in TEXT_URL.findall(text)]
        assert urls == TEXT_URL.findall(text_plain)
        assert f"Part 7, Reader {delivery}" in text
        pixel = re.findall(rf'<img src="{SITE}/o/([A-Za-z0-9_-]+)"', html)
        assert [tokens.read(SECRET, "open", t) for t in pixel] == [(9, delivery, 0)]
