"""Issue layouts added from the console: MJML stored in the database beside email_templates/.

A layout is checked before it is saved by compiling a sample issue with it through the
same renderer every send uses, so a layout that does not compile is never stored. The
renderer reads stored layouts from this process's registry (`layout()`), which `refresh()`
fills from the database; a folder on disk with the same name always wins.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, invalid
from app.issues import layout as _layout
from app.issues import rendering
from app.issues.templating import DYNAMIC_NAMES, BodyError, SlottedTemplate
from app.media.models import EmailLayout

MAX_BYTES = 100_000
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SAMPLE_BODY = "# A heading\n\nA paragraph with [a link](https://example.org).\n\n- one\n- two\n"
REFRESH_SECONDS = 30.0


@dataclass(frozen=True)
class StoredLayout:
    name: str
    mjml: str
    text: str


_registry: dict[str, StoredLayout] = {}
_loaded_at: dict[str, float] = {}


def layout(name: str, dynamic: frozenset[str]) -> _layout.Layout | None:
    """The renderer's hook: a stored layout by name, compiled, or None."""
    stored = _registry.get(name)
    if stored is None:
        return None
    kwargs = {"dynamic": dynamic, "static": _layout.LAYOUT_NAMES}
    return _layout.Layout(
        name=name,
        html=SlottedTemplate(stored.mjml, tag="L", autoescape=True, **kwargs),
        text=SlottedTemplate(stored.text or "{{ body }}", tag="T", autoescape=False, **kwargs),
        css="",
    )


def folder_names() -> list[str]:
    """The layouts on disk, in email_templates/."""
    return sorted(p.parent.name for p in _layout.TEMPLATES_DIR.glob("*/layout.mjml"))


def names() -> list[str]:
    """Every layout an issue may name: folders first, then stored ones."""
    disk = folder_names()
    return disk + sorted(n for n in _registry if n not in disk)


async def refresh(*, session: AsyncSession, key: str = "", force: bool = False) -> None:
    """Reload the registry from the database, at most every REFRESH_SECONDS unless forced."""
    if not force and fresh(key):
        return
    try:
        rows = (await session.scalars(select(EmailLayout))).all()
    except (DBAPIError, OSError):  # not migrated yet, or the database is not answering
        postpone(key)  # keep what we have for a period rather than retry every request
        return
    _registry.clear()
    _registry.update({r.name: StoredLayout(r.name, r.mjml, r.text) for r in rows})
    _loaded_at[key] = time.monotonic()


def preview(name: str) -> str:
    """A sample issue rendered with this layout, as HTML."""
    content = rendering.IssueContent(
        id=0, subject="A sample issue", preheader="What a preheader looks like",
        from_addr="News <news@example.org>", template=name, format="markdown",
        body=SAMPLE_BODY, list_id="<sample.example.org>", list_names=("Sample list",),
    )  # fmt: skip
    compiled = rendering.compile_issue(content, archive_url="https://example.org/archive/0")
    return compiled.render_archive_html()


def _check(name: str, mjml: str, text: str) -> None:
    previous = _registry.get(name)
    _registry[name] = StoredLayout(name, mjml, text)
    try:
        _layout.load_layout.cache_clear()
        layout(name, DYNAMIC_NAMES)
        preview(name)
    except (BodyError, rendering.HeaderError, RecursionError) as exc:
        raise invalid("mjml", f"the layout does not compile: {exc}") from None
    finally:
        if previous is None:
            _registry.pop(name, None)
        else:
            _registry[name] = previous
        _layout.load_layout.cache_clear()


async def add(*, session: AsyncSession, name: str, mjml: str, text: str) -> EmailLayout:
    """Validate, compile and store a new layout; 422 naming the field, 409 on a taken name."""
    name = name.strip()
    if not NAME.fullmatch(name):
        raise invalid("name", "a name is lower-case letters, digits, - and _ (at most 64)")
    if name in folder_names() or name in _registry:
        raise Conflict(f"a layout named {name} exists already")
    for field, value in (("mjml", mjml), ("text", text)):
        if len(value.encode()) > MAX_BYTES or "\x00" in value:
            raise invalid(field, f"the {field} layout is over {MAX_BYTES // 1000} KB")
    if "{{ body }}" not in mjml.replace("{{body}}", "{{ body }}"):
        raise invalid("mjml", "the layout must print {{ body }} inside an <mj-text>")
    await asyncio.to_thread(_check, name, mjml, text)
    row = EmailLayout(name=name, mjml=mjml, text=text)
    session.add(row)
    await session.flush()
    _registry[name] = StoredLayout(name, mjml, text)
    return row


async def get_source(*, session: AsyncSession, name: str) -> EmailLayout | None:
    """A stored layout's row, or None."""
    return await session.scalar(select(EmailLayout).where(EmailLayout.name == name))


def fresh(key: str) -> bool:
    """Whether the registry was loaded for this database within REFRESH_SECONDS."""
    return time.monotonic() - _loaded_at.get(key, 0.0) < REFRESH_SECONDS


def postpone(key: str) -> None:
    """Keep the registry as it is for another period (the database did not answer)."""
    _loaded_at[key] = time.monotonic()


def reset() -> None:
    """Forget the registry (tests: each starts from an empty database)."""
    _registry.clear()
    _loaded_at.clear()
    _layout.load_layout.cache_clear()
