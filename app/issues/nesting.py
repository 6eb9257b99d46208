"""How deep markup nests, counted in Python before any native parser sees it.

nh3, css-inline and mrml are Rust and recurse per level of nesting: measured on this
machine (8 MB stacks, main thread and worker threads alike), css-inline dies with a
segfault between 9,000 and 10,000 nested `<div>` and mrml between 1,000 and 2,000
nested `<mj-wrapper>`, taking the whole server down. A signal cannot be caught, so the
depth is bounded here, far below either: real emails nest a few dozen levels.
"""

from __future__ import annotations

from html.parser import HTMLParser

MAX_DEPTH = 200
# Elements that never hold others, and those a new sibling closes (HTML's implied ends),
# so `<li>a<li>b` counts as two siblings, as the browser parses it, not as nesting.
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
                   "meta", "param", "source", "track", "wbr", "mj-image", "mj-divider",
                   "mj-spacer", "mj-breakpoint", "mj-all", "mj-class"})  # fmt: skip
_SIBLING_CLOSES = {"p": {"p"}, "li": {"li"}, "dt": {"dt", "dd"}, "dd": {"dt", "dd"},
                   "tr": {"tr", "td", "th"}, "td": {"td", "th"}, "th": {"td", "th"},
                   "option": {"option"}}  # fmt: skip


class TooDeep(ValueError):
    """Markup nested deeper than MAX_DEPTH."""


class _Depth(HTMLParser):
    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=False)
        self.limit = limit
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        closes = _SIBLING_CLOSES.get(tag)
        while closes and self.open and self.open[-1] in closes:
            self.open.pop()
        self.open.append(tag)
        if len(self.open) > self.limit:
            raise TooDeep(f"the markup nests deeper than {self.limit} levels")

    def handle_endtag(self, tag: str) -> None:
        # As a browser does: an end tag closes its most recent open element and every
        # element opened inside it; a stray end tag is ignored.
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i] == tag:
                del self.open[i:]
                return


def check_depth(markup: str, *, limit: int = MAX_DEPTH) -> None:
    """Raise TooDeep when `markup` (HTML or MJML) nests more than `limit` elements."""
    if markup.count("<") <= limit:
        return  # too few tags to nest that deep: the common case costs one count
    parser = _Depth(limit)
    parser.feed(markup)
    parser.close()
