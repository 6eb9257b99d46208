"""Layout folders of email_templates/ and the once-per-issue HTML pipeline.

Body: Markdown (markdown-it-py) or HTML, sanitised by nh3, content CSS inlined.
Layout: MJML (mrml), CSS inlined by css-inline keeping @media rules. The body is spliced
into the finished layout, and the result cut at slot markers into static chunks.
"""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import css_inline
import mrml
import nh3
from jinja2.environment import Template
from markdown_it import MarkdownIt

from app.issues.mime import PartChunks
from app.issues.nesting import TooDeep, check_depth
from app.issues.plaintext import html_to_text
from app.issues.sandbox import make_env
from app.issues.templating import DYNAMIC_NAMES, SLOT_RE, BodyError, SlottedTemplate

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "email_templates"
BODY_MARK = "zqTIDINGSBODYqz"
LAYOUT_NAMES = frozenset({
    "organisation", "date", "list_names", "web_version", "subscribe_url", "archive_index_url",
    "lang", "footer",
})  # fmt: skip
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

_md = MarkdownIt("commonmark", {"linkify": False, "html": True}).enable(["table", "strikethrough"])
_inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
_render_options = mrml.RenderOptions(disable_comments=True, fonts={})
_DARK_META = (
    '<meta name="color-scheme" content="light dark">'
    '<meta name="supported-color-schemes" content="light dark">'
)
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
_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.I | re.S)
_IMPORT = re.compile(r"@import[^;]*;?", re.I)
_BAD_SCHEME = re.compile(r"\s*(?!(?:https?|mailto|tel):)[a-z][a-z0-9+.\-]*:", re.I)
_URL_START = re.compile(r"""\b(?:href|src)\s*=\s*["']?$""", re.I)
_CSS_VALUE = re.compile(r"""\bstyle\s*=\s*"[^"]*$""", re.I)
_NOT_CSS = re.compile(r"[^\w #%.,-]")


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


def body_fragment(skeleton: str, format: str, css: str) -> tuple[str, str]:
    """Body source (Jinja already rendered) to sanitised, styled HTML and to plain text."""
    html = _md.render(skeleton) if format == "markdown" else skeleton
    _shallow(html, "the body")
    html = sanitise(html)
    text = html_to_text(html)
    if css.strip():
        html = css_inline.inline_fragment(html, css, load_remote_stylesheets=False)
    return fit_images(html), text


def _shallow(markup: str, what: str) -> None:
    """BodyError before a native parser meets nesting deep enough to overflow its stack."""
    try:
        check_depth(markup)
    except TooDeep as exc:
        raise BodyError(f"{what}: {exc}") from None


@lru_cache(maxsize=64)
def mjml_to_html(source: str) -> str:
    """MJML to finished HTML: inlined CSS, @media kept, dark-mode meta, nothing external."""
    _shallow(source, "the layout")
    try:
        html = mrml.to_html(source, render_options=_render_options).content
    except Exception as exc:  # noqa: BLE001 - mrml raises its own untyped errors
        raise BodyError(f"the layout is not valid MJML: {exc}") from None
    # Tags first, so the regexes below can only meet real tags: after fix_tags no attribute
    # value holds a raw `<`, and text never did (mrml and Jinja escape it).
    html = fix_tags(_inliner.inline(html))
    html = _STYLE_BLOCK.sub(lambda m: m[1] + _IMPORT.sub("", m[2]) + m[3], html)
    # MJML hides the preheader in white text, which spam filters score as low contrast text;
    # display:none, max-height:0 and opacity:0 hide it without that.
    html = html.replace(
        '<div style="display:none;font-size:1px;color:#ffffff;',
        '<div style="display:none;font-size:1px;',
        1,
    )
    html = re.sub(r"<head\b[^>]*>", lambda m: m[0] + _DARK_META, html, count=1)
    return html.rstrip("\n") + "\n"


@dataclass(frozen=True)
class Layout:
    """One folder of email_templates/: MJML and text layouts, and the body's CSS."""

    name: str
    html: SlottedTemplate
    text: SlottedTemplate
    css: str


@lru_cache(maxsize=32)
def load_layout(name: str, dynamic: frozenset[str] = DYNAMIC_NAMES) -> Layout:
    """Load and compile email_templates/<name>/ (layout.mjml, layout.txt, content.css).

    `dynamic` names the per-recipient variables: `issue` too when the subject is personalised.
    """
    folder = TEMPLATES_DIR / name
    if not _NAME.fullmatch(name) or not (folder / "layout.mjml").is_file():
        from app.issues import stored_layouts  # layouts added from the console

        stored = stored_layouts.layout(name, dynamic) if _NAME.fullmatch(name) else None
        if stored is not None:
            return stored
        raise FileNotFoundError(f"no template folder email_templates/{name}/ with layout.mjml")
    css = folder / "content.css"
    return Layout(
        name=name,
        html=_slotted(folder / "layout.mjml", "L", True, dynamic),
        text=_slotted(folder / "layout.txt", "T", False, dynamic),
        css=css.read_text() if css.is_file() else "",
    )


def _slotted(path: Path, tag: str, html: bool, dynamic: frozenset[str]) -> SlottedTemplate:
    source = path.read_text() if path.is_file() else "{{ body }}"
    try:
        return SlottedTemplate(source, tag=tag, autoescape=html, dynamic=dynamic,
                               static=LAYOUT_NAMES)  # fmt: skip
    except BodyError as exc:
        raise BodyError(f"{path.relative_to(TEMPLATES_DIR)}: {exc}") from None


@dataclass(frozen=True)
class Assembled:
    """Both parts cut into static chunks and references to slot values."""

    html: PartChunks
    html_refs: list[tuple[str, int, str]]
    text: PartChunks
    text_refs: list[tuple[str, int, str]]

    def fill(self, values: dict[str, list[str]]) -> tuple[list[str], list[str]]:
        """Slot values escaped for where they land: HTML text, URL, CSS, or plain text."""
        html = [_escape(values[t][i], kind) for t, i, kind in self.html_refs]
        text = [_flat(values[t][i]) for t, i, _ in self.text_refs]
        return html, text


def _flat(value: str) -> str:
    return " ".join(value.splitlines()) if "\n" in value or "\r" in value else value


def _escape(value: str, kind: str) -> str:
    value = _flat(value)
    if kind == "url" and _BAD_SCHEME.match(value):
        value = "#"  # a subscriber-supplied javascript: or data: link goes nowhere
    elif kind == "css":
        value = _NOT_CSS.sub("", value)
    return htmllib.escape(value, quote=True)


def split_slots(text: str, *, html: bool) -> tuple[PartChunks, list[tuple[str, int, str]]]:
    """Cut a finished part at its slot markers, noting each slot's HTML context."""
    parts = SLOT_RE.split(text)
    chunks, refs, tail = [parts[0]], [], parts[0][-300:]
    for k in range(1, len(parts), 3):
        kind = "text"
        if html:
            kind = (
                "url" if _URL_START.search(tail) else "css" if _CSS_VALUE.search(tail) else "html"
            )
        refs.append((parts[k], int(parts[k + 1]), kind))
        chunks += ["", parts[k + 2]]
        tail = (tail + "x" + parts[k + 2])[-300:]
    return PartChunks(chunks), refs


def assemble(layout: Layout, html_skel: str, text_skel: str, body_skel: str, *,
             format: str) -> Assembled:  # fmt: skip
    """Splice the body into the layout and cut both parts at their slots."""
    page = mjml_to_html(html_skel)
    if BODY_MARK not in page or BODY_MARK not in text_skel:
        raise BodyError(f"layout {layout.name} must place {{{{ body }}}} in both files")
    body_html, body_text = body_fragment(body_skel, format, layout.css)
    text = text_skel.replace(BODY_MARK, body_text, 1).strip() + "\n"
    html, html_refs = split_slots(page.replace(BODY_MARK, body_html, 1), html=True)
    text_part, text_refs = split_slots(text, html=False)
    return Assembled(html, html_refs, text_part, text_refs)


@dataclass(frozen=True)
class SystemEmail:
    """email_templates/<kind>/: subject.txt, email.mjml, email.txt."""

    subject: Template
    html: SlottedTemplate
    text: SlottedTemplate

    def render(self, ctx: dict[str, Any]) -> tuple[str, str]:
        """The HTML and text of one system email."""
        out = []
        for template, is_html in ((self.html, True), (self.text, False)):
            skeleton, values = template.render_recording(ctx)
            page = mjml_to_html(skeleton) if is_html else skeleton.strip() + "\n"
            part, refs = split_slots(page, html=is_html)
            vals = [_escape(values[i], k) if is_html else _flat(values[i]) for _, i, k in refs]
            out.append(part.text(vals))
        return out[0], out[1]


@lru_cache(maxsize=32)
def load_system(kind: str, keys: frozenset[str]) -> SystemEmail:
    """Load email_templates/<kind>/ with `keys` as the per-email variables."""
    folder = TEMPLATES_DIR / kind
    if not _NAME.fullmatch(kind) or not (folder / "email.mjml").is_file():
        raise FileNotFoundError(f"no system email folder email_templates/{kind}/")
    dynamic = frozenset(keys - {"organisation"})
    subject = make_env(autoescape=False).from_string((folder / "subject.txt").read_text().strip())
    return SystemEmail(
        subject=subject,
        html=_slotted(folder / "email.mjml", "S", True, dynamic),
        text=_slotted(folder / "email.txt", "X", False, dynamic),
    )
