"""Tracked links, rewritten once when an issue is compiled; per recipient only tokens vary.

The finished HTML and text parts of an issue (static text with slot markers) are cut
again with one more kind of slot, tag "K": slot 0 is the open pixel, slot 1 a hidden link
that no person can see or click, slots 2.. the issue's links. Each recipient's values are
the redirect URLs carrying their tokens. The link table (index -> URL) is fixed when the
issue compiles and stored in `issue_links`; the redirect reads the target only from there.
"""

from __future__ import annotations

import asyncio
import html as htmllib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import on_postgresql
from app.engagement import tokens
from app.engagement.models import IssueLink
from app.issues.layout import Assembled, split_slots
from app.issues.templating import SLOT_RE, marker

TAG = "K"  # B, L, T (issues) and S, X (system emails) are taken
PIXEL, TRAP, FIRST = 0, 1, 2
_ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\bhref=")(https?://[^"\s]+)(")""", re.I)
_TEXT_URL = re.compile(r"""https?://[^\s<>()\[\]"']+""")
_BODY_END = re.compile(r"</body\s*>", re.I)
# Never rewritten: the reader's own unsubscribe/preference links are slots anyway, but the
# archive and sign-up pages are static URLs of ours that must work without a redirect.
_OWN_PATHS = ("/u/", "/preferences/", "/archive", "/subscribe", "/test-message", "/r/", "/o/")
_PIXEL = (
    '<img src="{}" width="1" height="1" alt="" '
    'style="display:block;width:1px;height:1px;border:0;overflow:hidden">'
)
_TRAP = '<a href="{}" style="display:none;font-size:0" aria-hidden="true" tabindex="-1"></a>'


@dataclass
class Tracking:
    """An issue's tracking choices and, once compiled, its link table."""

    issue_id: int
    site_url: str
    secret: str
    opens: bool
    clicks: bool
    urls: dict[str, int] = field(default_factory=dict)  # URL -> index (2..)
    frozen: bool = False
    _series: dict[int, tuple[tokens.Series, tokens.Series]] = field(
        default_factory=dict, init=False, repr=False
    )

    def _own(self, url: str) -> bool:
        if not url.startswith(self.site_url):
            return False
        rest = url[len(self.site_url) :]
        return rest in ("", "/") or rest.startswith(_OWN_PATHS)

    def _index(self, url: str) -> int | None:
        index = self.urls.get(url)
        if index is None and not self.frozen and not self._own(url):
            index = self.urls[url] = FIRST + len(self.urls)
        return index

    def links(self) -> list[tuple[int, str]]:
        """The link table: (index, URL), with the hidden link leading to the site."""
        return [(TRAP, self.site_url or "/"), *((i, u) for u, i in self.urls.items())]

    def apply(self, assembled: Assembled) -> Assembled:
        """The tracked variant of one assembled issue (links, pixel, hidden link)."""
        page = _joined(assembled.html.chunks, assembled.html_refs)
        text = _joined(assembled.text.chunks, assembled.text_refs)
        if self.clicks:
            page = _ANCHOR_HREF.sub(self._html_link, page)
            text = _TEXT_URL.sub(self._text_link, text)
        extra = _TRAP.format(self._click_url(TRAP)) if self.clicks else ""
        if self.opens:
            extra += _PIXEL.format(f"{self.site_url}/o/{marker(TAG, PIXEL)}")
        if extra:
            found = _BODY_END.search(page)
            page = page[: found.start()] + extra + page[found.start() :] if found else page + extra
        html_part, html_refs = split_slots(page, html=True)
        text_part, text_refs = split_slots(text, html=False)
        return Assembled(html_part, _tokens(html_refs), text_part, _tokens(text_refs))

    def _html_link(self, m: re.Match[str]) -> str:
        url = htmllib.unescape(m[2])
        index = None if SLOT_RE.search(url) else self._index(url)
        return m[0] if index is None else f"{m[1]}{self._click_url(index)}{m[3]}"

    def _text_link(self, m: re.Match[str]) -> str:
        url = m[0].rstrip(".,;:!?")
        index = None if SLOT_RE.search(url) else self.urls.get(url)
        return m[0] if index is None else self._click_url(index) + m[0][len(url) :]

    def _click_url(self, index: int) -> str:
        # The redirect's address is static text: per recipient only the token is a slot.
        return f"{self.site_url}/r/{marker(TAG, index)}"

    def values(self, delivery_id: int) -> list[str]:
        """One recipient's slot values: the pixel's token, then each link's."""
        count = FIRST + len(self.urls) if self.clicks else TRAP
        made = self._series.get(count)
        if made is None:  # once, or again only while the link table still grows
            clicks = tokens.Series(self.secret, "click", range(TRAP, count))
            made = self._series[count] = (tokens.Series(self.secret, "open", range(1)), clicks)
        pixel, clicks = made
        return pixel(self.issue_id, delivery_id) + clicks(self.issue_id, delivery_id)


def _tokens(refs: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    # Our slots' values are tokens (URL-safe base64): the renderer puts them in as they are.
    return [(tag, i, "token" if tag == TAG else kind) for tag, i, kind in refs]


def _joined(chunks: list[str], refs: list[tuple[str, int, str]]) -> str:
    """A split part with its markers put back, so it can be cut again."""
    out = [chunks[0]]
    for (tag, index, _), static in zip(refs, chunks[2::2], strict=True):
        out += (marker(tag, index), static)
    return "".join(out)


async def store(session: AsyncSession, issue_id: int, links: Iterable[tuple[int, str]]) -> None:
    """Write an issue's link table; rows already there (an earlier compile) stay as they are."""
    values = [{"issue_id": issue_id, "idx": i, "url": u} for i, u in links]
    if not values:
        return
    # Two dispatchers may compile the same issue at once: the second insert changes nothing.
    dialect = postgresql if on_postgresql(session) else sqlite
    await session.execute(dialect.insert(IssueLink).values(values).on_conflict_do_nothing())


class LinkCache:
    """Each issue's link table, read once per process: redirects answer without the database.

    Requests that miss together share one read (a burst of clicks on a new issue would
    otherwise queue one query each for the connection pool).
    """

    def __init__(self, size: int = 512):
        self.size = size
        self.tables: dict[int, dict[int, str]] = {}
        self.reading: dict[int, asyncio.Future[dict[int, str]]] = {}

    def get(self, issue_id: int) -> dict[int, str] | None:
        """The cached table, or None if this process has not read it yet."""
        return self.tables.get(issue_id)

    async def fetch(self, sessions: Callable[[], Any], issue_id: int) -> dict[int, str]:
        """Read one issue's table (empty for an issue never compiled) through a session from
        `sessions()`, or wait for the read already under way."""
        pending = self.reading.get(issue_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future = self.reading[issue_id] = asyncio.get_running_loop().create_future()
        try:
            async with sessions() as session:
                rows = await session.execute(
                    select(IssueLink.idx, IssueLink.url).where(IssueLink.issue_id == issue_id)
                )
                table = {int(i): str(u) for i, u in rows}
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the callers that waited get it raised
            raise
        finally:
            del self.reading[issue_id]
        future.set_result(table)
        if table:  # an empty table may fill once the issue compiles: read again next time
            if len(self.tables) >= self.size:
                self.tables.pop(next(iter(self.tables)))
            self.tables[issue_id] = table
        return table
