"""The text/plain part: sanitised body HTML turned into readable, wrapped plain text."""

from __future__ import annotations

import re
import textwrap
from html.parser import HTMLParser

WIDTH = 76
_SPACE = re.compile(r"[ \t\r\n\f\v]+")
_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "figure",
    "figcaption",
    "dl",
    "dt",
    "dd",
    "center",
    "details",
    "summary",
    "caption",
}
_SKIP = {"style", "script", "head", "title"}


class _TextWriter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[tuple[str, bool]] = []  # (block text, tight: list item or table row)
        self.inline: list[str] = []
        self.lists: list[list[int]] = []  # [ordered?, counter] per open list
        self.marker: str | None = None  # bullet waiting for the first line of a list item
        self.quote = self.pre = self.skip = 0
        self.links: list[tuple[str, int]] = []
        self.row: list[str] | None = None
        self.cell_start = 0
        self.header_row = False

    # Blocks -------------------------------------------------------------------------------
    def _prefix(self) -> tuple[str, str]:
        quote = "> " * self.quote
        indent = "  " * max(0, len(self.lists) - 1)
        if not self.lists:
            return quote, quote
        width = len(self.marker) if self.marker else (4 if self.lists[-1][0] else 2)
        first = indent + (self.marker or " " * width)
        return quote + first, quote + indent + " " * width

    def flush(self) -> None:
        text = "".join(self.inline)
        self.inline = []
        if self.pre:
            self.out.append((text.strip("\n"), False))
            return
        lines = [_SPACE.sub(" ", line).strip() for line in text.split("\n")]
        lines = [line for line in lines if line]
        if not lines:
            return
        first, rest = self._prefix()
        wrapped: list[str] = []
        for line in lines:
            wrapped += textwrap.wrap(
                line, max(20, WIDTH - len(rest)), break_long_words=False, break_on_hyphens=False
            ) or [""]
        block = "\n".join((first if i == 0 else rest) + w for i, w in enumerate(wrapped))
        self.out.append((block, bool(self.lists)))
        self.marker = None

    def emit(self, text: str, tight: bool = False) -> None:
        self.flush()
        self.out.append(("> " * self.quote + text, tight))

    # Parser callbacks ---------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in _SKIP:
            self.skip += 1
        elif tag in _BLOCKS or tag in {"h1", "h2", "h3", "h4", "h5", "h6", "table"}:
            self.flush()
        elif tag in {"ul", "ol"}:
            self.flush()
            self.lists.append([tag == "ol", int(a.get("start") or 1) - 1])
        elif tag == "li":
            self.flush()
            if self.lists:
                self.lists[-1][1] += 1
                ordered, n = self.lists[-1]
                self.marker = f"{n}. " if ordered else "- "
        elif tag == "blockquote":
            self.flush()
            self.quote += 1
        elif tag == "pre":
            self.flush()
            self.pre += 1
        elif tag == "br":
            self.inline.append("\n")
        elif tag == "hr":
            self.emit("-" * 20)
        elif tag == "a":
            self.links.append((a.get("href") or "", len(self.inline)))
        elif tag == "img" and a.get("alt"):
            self.inline.append(f"[{a['alt']}]")
        elif tag == "tr":
            self.row, self.header_row = [], False
        elif tag in {"td", "th"}:
            self.cell_start = len(self.inline)
            self.header_row = self.header_row or tag == "th"

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in {"h1", "h2"}:
            title = _SPACE.sub(" ", "".join(self.inline)).strip()
            self.inline = []
            if title:
                self.emit(title + "\n" + ("=" if tag == "h1" else "-") * min(len(title), WIDTH))
        elif tag in _BLOCKS or tag in {"h3", "h4", "h5", "h6", "li", "table"}:
            self.flush()
        elif tag in {"ul", "ol"}:
            self.flush()
            if self.lists:
                self.lists.pop()
        elif tag == "blockquote":
            self.flush()
            self.quote = max(0, self.quote - 1)
        elif tag == "pre":
            self.flush()
            self.pre = max(0, self.pre - 1)
        elif tag == "a" and self.links:
            self._close_link(*self.links.pop())
        elif tag in {"td", "th"} and self.row is not None:
            cell = _SPACE.sub(" ", "".join(self.inline[self.cell_start :])).strip()
            del self.inline[self.cell_start :]
            self.row.append(cell)
        elif tag == "tr" and self.row is not None:
            self.emit(" | ".join(self.row), tight=True)
            if self.header_row:
                self.emit(" | ".join("-" * max(3, len(c)) for c in self.row), tight=True)
            self.row = None

    def _close_link(self, href: str, start: int) -> None:
        text = _SPACE.sub(" ", "".join(self.inline[start:])).strip()
        if not href or href.startswith("#") or href == text:
            return
        if href.startswith("mailto:") and href[7:] == text:
            return
        self.inline.append(f" ({href})" if text else href)

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.inline.append(data)

    def text(self) -> str:
        self.close()
        self.flush()
        parts: list[str] = []
        prev_tight = False
        for block, tight in self.out:
            if parts:
                parts.append("\n" if tight and prev_tight else "\n\n")
            parts.append(block)
            prev_tight = tight
        return "".join(parts)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML fragment: links written out, lists, quotes, tables."""
    writer = _TextWriter()
    writer.feed(html)
    return writer.text()
