"""Issue layouts added from the console: MJML stored in the database beside email_templates/.

A layout is checked before it is saved by compiling a sample issue with it through the
same renderer every send uses, so a layout that does not compile is never stored. The
renderer reads stored layouts from this process's copy in layout_registry.py, which
`refresh()` fills from the database; a folder on disk with the same name always wins.
"""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, invalid
from app.issues import layout as _layout
from app.issues import layout_registry, rendering
from app.issues.layout_registry import (  # the registry's API, as the console and feeder use it
    REFRESH_SECONDS,
    StoredLayout,
    fresh,
    postpone,
    refresh,
)
from app.issues.templating import DYNAMIC_NAMES, BodyError
from app.media.models import EmailLayout

__all__ = [
    "MAX_BYTES",
    "NAME",
    "REFRESH_SECONDS",
    "SAMPLE_BODY",
    "StoredLayout",
    "add",
    "folder_names",
    "fresh",
    "get_source",
    "layout",
    "names",
    "postpone",
    "preview",
    "refresh",
    "reset",
]

MAX_BYTES = 100_000
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SAMPLE_BODY = "# A heading\n\nA paragraph with [a link](https://example.org).\n\n- one\n- two\n"


def layout(name: str, dynamic: frozenset[str]) -> _layout.Layout | None:
    """A stored layout by name, compiled, or None."""
    stored = layout_registry.get(name)
    return None if stored is None else _layout.compile_stored(stored, dynamic)


def folder_names() -> list[str]:
    """The layouts on disk, in email_templates/."""
    return sorted(p.parent.name for p in _layout.TEMPLATES_DIR.glob("*/layout.mjml"))


def names() -> list[str]:
    """Every layout an issue may name: folders first, then stored ones."""
    disk = folder_names()
    return disk + [n for n in layout_registry.stored_names() if n not in disk]


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
    previous = layout_registry.get(name)
    layout_registry.put(StoredLayout(name, mjml, text))
    try:
        _layout.load_layout.cache_clear()
        layout(name, DYNAMIC_NAMES)
        preview(name)
    except (BodyError, rendering.HeaderError, RecursionError) as exc:
        raise invalid("mjml", f"the layout does not compile: {exc}") from None
    finally:
        if previous is None:
            layout_registry.drop(name)
        else:
            layout_registry.put(previous)
        _layout.load_layout.cache_clear()


async def add(*, session: AsyncSession, name: str, mjml: str, text: str) -> EmailLayout:
    """Validate, compile and store a new layout; 422 naming the field, 409 on a taken name."""
    name = name.strip()
    if not NAME.fullmatch(name):
        raise invalid("name", "a name is lower-case letters, digits, - and _ (at most 64)")
    if name in folder_names() or layout_registry.get(name) is not None:
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
    layout_registry.put(StoredLayout(name, mjml, text))
    return row


async def get_source(*, session: AsyncSession, name: str) -> EmailLayout | None:
    """A stored layout's row, or None."""
    return await session.scalar(select(EmailLayout).where(EmailLayout.name == name))


def reset() -> None:
    """Forget the registry (tests: each starts from an empty database)."""
    layout_registry.clear()
    _layout.load_layout.cache_clear()
