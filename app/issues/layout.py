"""Layouts (folders of email_templates/ and stored ones) and the once-per-issue HTML pipeline.

Body: Markdown (markdown-it-py) or HTML, sanitised by nh3 (sanitise.py), content CSS
inlined. Layout: MJML (mrml), CSS inlined by css-inline keeping @media rules. The body is
spliced into the finished layout, and the result cut at slot markers into static chunks.
A layout added from the console is read from layout_registry.py when no folder has its name.
"""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
import mrml
from jinja2.environment import Template
from markdown_it import MarkdownIt

from app.issues import layout_registry
from app.issues.layout_registry import StoredLayout
from app.issues.memo import BoundedMemo
from app.issues.mime import SOFT_BREAK, PartChunks, qp_piece
from app.issues.nesting import TooDeep, check_depth
from app.issues.plaintext import html_to_text
from app.issues.sandbox import make_env
from app.issues.sanitise import fit_images, fix_tags, sanitise
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
_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.I | re.S)
_IMPORT = re.compile(r"@import[^;]*;?", re.I)
_BAD_SCHEME = re.compile(r"\s*(?!(?:https?|mailto|tel):)[a-z][a-z0-9+.\-]*:", re.I)
_URL_START = re.compile(r"""\b(?:href|src)\s*=\s*["']?$""", re.I)
_CSS_VALUE = re.compile(r"""\bstyle\s*=\s*"[^"]*$""", re.I)
_NOT_CSS = re.compile(r"[^\w #%.,-]")


# Validation and the compile after it (autosave, then preview) meet the same body: the
# second is served from here. About 1 MB per entry for a 100 KB body, so 16 M characters
# hold a handful of those or all 32 of newsletter-sized ones.
body_memo: BoundedMemo[tuple[str, str]] = BoundedMemo(max_entries=32, max_chars=16_000_000)


def body_fragment(skeleton: str, format: str, css: str) -> tuple[str, str]:
    """Body source (Jinja already rendered) to sanitised, styled HTML and to plain text.

    Pure in its three arguments (the Markdown, nh3 and image settings are fixed here), so
    the result is memoized by them (memo.py): the same body compiles once.
    """
    return body_memo.get((skeleton, format, css), lambda: _body_fragment(skeleton, format, css))


def _body_fragment(skeleton: str, format: str, css: str) -> tuple[str, str]:
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
        stored = layout_registry.get(name) if _NAME.fullmatch(name) else None
        if stored is not None:  # a layout added from the console
            return compile_stored(stored, dynamic)
        raise FileNotFoundError(f"no template folder email_templates/{name}/ with layout.mjml")
    css = folder / "content.css"
    return Layout(
        name=name,
        html=_slotted(folder / "layout.mjml", "L", True, dynamic),
        text=_slotted(folder / "layout.txt", "T", False, dynamic),
        css=css.read_text() if css.is_file() else "",
    )


def compile_stored(stored: StoredLayout, dynamic: frozenset[str]) -> Layout:
    """A layout stored from the console, compiled as a folder's would be (no content CSS)."""
    kwargs = {"dynamic": dynamic, "static": LAYOUT_NAMES}
    return Layout(
        name=stored.name,
        html=SlottedTemplate(stored.mjml, tag="L", autoescape=True, **kwargs),
        text=SlottedTemplate(stored.text or "{{ body }}", tag="T", autoescape=False, **kwargs),
        css="",
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
    """Both parts cut into static chunks and references to slot values.

    Refs of kind "token" are the tracked links' tokens (app/engagement/links.py): URL-safe
    base64 made by us, put in as they are, with nothing to escape in HTML or in QP.
    """

    html: PartChunks
    html_refs: list[tuple[str, int, str]]
    text: PartChunks
    text_refs: list[tuple[str, int, str]]
    # The pieces made per message: each distinct (tag, index, kind) but tokens, then each
    # token tag's values; and which piece each slot of each part takes.
    keys: list[tuple[str, int, str]] = field(init=False, repr=False)
    token_tags: list[tuple[str, int]] = field(init=False, repr=False)  # (tag, count)
    html_ids: list[int] = field(init=False, repr=False)
    text_ids: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        refs = self.html_refs + self.text_refs
        keys = list(dict.fromkeys(r for r in refs if r[2] != "token"))
        counts: dict[str, int] = {}  # each token tag's values that slots take: 0..count-1
        for tag, index, _ in (r for r in refs if r[2] == "token"):
            counts[tag] = max(counts.get(tag, 0), index + 1)
        place = {key: n for n, key in enumerate(keys)}
        for tag, count in counts.items():
            place.update({(tag, i, "token"): n for n, i in enumerate(range(count), len(place))})
        for name, value in (("keys", keys), ("token_tags", list(counts.items())),
                            ("html_ids", [place[r] for r in self.html_refs]),
                            ("text_ids", [place[r] for r in self.text_refs])):  # fmt: skip
            object.__setattr__(self, name, value)

    def fill(self, values: dict[str, list[str]]) -> tuple[list[str], list[str]]:
        """Slot values escaped for where they land: HTML text, URL, CSS, or plain text."""
        html = [_escape(values[t][i], kind) for t, i, kind in self.html_refs]
        text = [_flat(values[t][i]) for t, i, _ in self.text_refs]
        return html, text

    def encode(self, values: dict[str, list[str]]) -> tuple[bytes, bytes]:
        """The text and HTML parts' QP bodies for these slot values (what fill() gives, encoded).

        Each distinct value is encoded once per kind: a name in four places of both parts
        twice, not eight times."""
        memo: dict[tuple[str, str], bytes] = {}
        pieces = []
        for tag, index, kind in self.keys:
            value = values[tag][index]
            piece = memo.get((value, kind))
            if piece is None:
                flat = _flat(value) if kind == "text" else _escape(value, kind)
                piece = memo[value, kind] = qp_piece(flat)
            pieces.append(piece)
        for tag, count in self.token_tags:
            pieces += [token.encode("ascii") + SOFT_BREAK for token in values[tag][:count]]
        return (
            self.text.joined([pieces[j] for j in self.text_ids]),
            self.html.joined([pieces[j] for j in self.html_ids]),
        )


def _flat(value: str) -> str:
    return " ".join(value.splitlines()) if "\n" in value or "\r" in value else value


def _escape(value: str, kind: str) -> str:
    value = _flat(value)
    if kind == "url" and _BAD_SCHEME.match(value):
        value = "#"  # a subscriber-supplied javascript: or data: link goes nowhere
    elif kind == "css":
        value = _NOT_CSS.sub("", value)
    elif kind == "token":
        return value
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
