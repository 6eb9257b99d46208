"""What HTML may reach an email: nh3's allow-list for bodies, and fixes to finished tags.

`sanitise()` keeps email-safe tags and styles of a body (no script, handlers, forms,
iframes or CSS expressions). `fix_tags()` edits only the real start tags of a finished
document, as a browser's tokenizer sees them: alt on every image, no raw `<`/`>` in an
attribute value, no <link>; `fit_images()` also keeps body images within the column.
"""

from __future__ import annotations

import html as htmllib
import re
from html.parser import HTMLParser

import nh3

_STYLE_PROPS = {
    "color", "background-color", "text-align", "font-weight", "font-style", "font-size",
    "text-decoration", "width", "max-width", "height", "padding", "margin", "border",
    "border-collapse", "vertical-align", "line-height",
}  # fmt: skip
_ATTRS: dict[str, set[str]] = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_EXTRA_ATTRS = {
    "*": {"style", "title", "dir", "lang"},
    "td": {"width"},
    "th": {"width"},
    "table": {"width", "border", "cellpadding", "cellspacing"},
}
for _tag, _extra in _EXTRA_ATTRS.items():
    _ATTRS[_tag] = _ATTRS.get(_tag, set()) | _extra
_EVIL_STYLE = re.compile(r"expression|url\s*\(|javascript:|behavio(u)?r|@import|-moz-binding", re.I)
_WIDTH = re.compile(r"\s*(\d+)")
_STYLE_WIDTH = re.compile(r"(?<![-\w])width\s*:\s*(\d+)px", re.I)
MAX_IMAGE_WIDTH = 560  # the 600 px column less its padding


def _style_filter(tag: str, attr: str, value: str) -> str | None:
    return None if attr == "style" and _EVIL_STYLE.search(value) else value


def sanitise(html: str) -> str:
    """nh3 with email-safe tags: no script, handlers, forms, iframes or CSS expressions."""
    return nh3.clean(
        html,
        attributes=_ATTRS,
        attribute_filter=_style_filter,
        filter_style_properties=_STYLE_PROPS,
        url_schemes={"http", "https", "mailto", "tel"},
    )


class _StartTags(HTMLParser):
    """The real start tags of a document, as a browser's tokenizer sees them.

    Regexes over finished HTML also match `<img` written inside an attribute value (mrml
    puts the subject, with `<` left raw, into the wrapper's aria-label), and an edit made
    there can close the attribute. Only what this tokenizer calls a tag is ever edited.
    """

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=False)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", html)]
        self.tags: list[tuple[int, int, str, list[tuple[str, str | None]], bool]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._note(tag, attrs, closed=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._note(tag, attrs, closed=True)

    def _note(self, tag: str, attrs: list[tuple[str, str | None]], *, closed: bool) -> None:
        line, column = self.getpos()  # the tag's first character: the parser moves on after
        start = self._line_starts[line - 1] + column
        raw = self.get_starttag_text() or ""
        self.tags.append((start, start + len(raw), tag, attrs, closed))


def _serialise(tag: str, attrs: list[tuple[str, str | None]], closed: bool) -> str:
    # Values come back unescaped from the parser; escaping `<` and `>` as well as quotes
    # keeps anything shaped like a tag out of attribute values for every later pass.
    parts = [f" {k}" if v is None else f' {k}="{htmllib.escape(v, quote=True)}"' for k, v in attrs]
    return f"<{tag}{''.join(parts)}{' /' if closed else ''}>"


def _fit_image(attrs: list[tuple[str, str | None]], clamp: bool) -> list[tuple[str, str | None]]:
    names = {k for k, _ in attrs}
    if clamp:
        attrs = _sized(attrs)
    return attrs if "alt" in names else [("alt", ""), *attrs]


def _sized(attrs: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """A width attribute on every body image, never wider than the column.

    Outlook on Windows ignores CSS sizes and draws an image without a width attribute at
    its natural size, breaking the 600 px column. The width is the image's own (its
    attribute, or a px width in its style) when it has one and fits; the column's when
    it is wider or unknown (we never fetch the image to measure it). `max-width:100%;
    height:auto` keeps the proportions wherever CSS is read.
    """
    values = dict(attrs)
    declared = _WIDTH.match(values.get("width") or "") or _STYLE_WIDTH.search(
        values.get("style") or ""
    )
    own = int(declared[1]) if declared else 0
    width = own if 0 < own <= MAX_IMAGE_WIDTH else MAX_IMAGE_WIDTH
    style = (values.get("style") or "").strip().rstrip(";")
    present = {d.partition(":")[0].strip().lower() for d in style.split(";")}
    for prop, value in (("max-width", "100%"), ("height", "auto")):
        if prop not in present:
            style = f"{style};{prop}:{value}" if style else f"{prop}:{value}"
    # A height only holds with the width it was given: a changed width would distort it.
    dropped = ("width", "style") if width == own else ("width", "style", "height")
    kept = [(k, v) for k, v in attrs if k not in dropped]
    return [*kept, ("width", str(width)), ("style", style)]


def _needs_rewrite(raw: str, tag: str, attrs: list[tuple[str, str | None]], clamp: bool) -> bool:
    if "<" in raw[1:] or ">" in raw[:-1] or tag == "link":
        return True
    if tag != "img":
        return False
    return clamp or not any(k == "alt" for k, _ in attrs)


def fix_tags(html: str, *, clamp_images: bool = False) -> str:
    """Real tags only: alt on every image, no raw `<`/`>` in attribute values, no <link>.

    With `clamp_images`, no image is declared wider than the content column.
    """
    out: list[str] = []
    pos = 0
    for start, end, tag, attrs, closed in _StartTags(html).tags:
        if not _needs_rewrite(html[start:end], tag, attrs, clamp_images):
            continue
        if tag == "link":  # nothing external but images and links: no stylesheets
            new = ""
        else:
            new = _serialise(tag, _fit_image(attrs, clamp_images) if tag == "img" else attrs,
                             closed)  # fmt: skip
        out += (html[pos:start], new)
        pos = end
    out.append(html[pos:])
    return "".join(out)


def fit_images(html: str) -> str:
    """Body images: alt everywhere, no width attribute wider than the content column."""
    return fix_tags(html, clamp_images=True)
