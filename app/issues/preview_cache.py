"""The editor's compiled issues, kept per process so a preview compiles only after a change.

A preview renders the issue with the dispatcher's own compile (service.compiled, i.e.
compose.compile_for_send), which costs tens of milliseconds for a newsletter-sized body,
while rendering one recipient from it costs a fraction of one. So the compiled issue is
kept, keyed by everything the compile reads: the issue's content as the renderer gets it
(subject, body, From, lists, language, date...), the layout object (stored_layouts clears
load_layout's cache when a layout changes, so a changed layout is a new object), the
branding snapshot, the public URL and what is tracked. Any edit changes the key; nothing
needs invalidating, and the oldest entries go first. Concurrent previews of one version
(the page's two frames and editor.js) share one compile, and an autosave starts the compile
of the version it saved (`warm`) so the preview that follows finds it done or under way.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import UTC, date, datetime
from typing import Any

from app import branding
from app.config import Settings
from app.engagement import settings as engagement_settings
from app.issues import compose, service
from app.issues import layout as _layout
from app.issues.rendering import CompiledIssue
from app.models import Issue

MAX_ENTRIES = 16  # a few issues being edited at once, each a few hundred KB compiled

_done: OrderedDict[tuple[Any, ...], CompiledIssue] = OrderedDict()
_pending: dict[tuple[Any, ...], asyncio.Task[CompiledIssue]] = {}


def _key(settings: Settings, issue: Issue) -> tuple[Any, ...] | None:
    """What the compile depends on; None when the layout is unknown (the compile says why)."""
    try:
        layout = _layout.load_layout(issue.template)
    except FileNotFoundError:
        return None
    content = compose.issue_content(settings, issue)
    # A draft has no start date: the compile prints today's, so today is part of the key.
    today: date | None = datetime.now(UTC).date() if content.date is None else None
    tracked = engagement_settings.tracks(settings, issue.track_opens, issue.track_clicks)
    return (content, today, layout, branding.current(), settings.public_url, tracked,
            settings.secret_key_value)  # fmt: skip


def _start(key: tuple[Any, ...], settings: Settings, issue: Issue) -> asyncio.Task[CompiledIssue]:
    loop = asyncio.get_running_loop()
    task = _pending.get(key)
    if task is not None and task.get_loop() is loop and not task.cancelled():
        return task
    task = loop.create_task(service.compiled(settings, issue))
    _pending[key] = task

    def finished(t: asyncio.Task[CompiledIssue]) -> None:
        if _pending.get(key) is t:
            del _pending[key]
        if t.cancelled() or t.exception() is not None:  # retrieved: awaited by the asker
            return
        _done[key] = t.result()
        _done.move_to_end(key)
        while len(_done) > MAX_ENTRIES:
            _done.popitem(last=False)

    task.add_done_callback(finished)
    return task


async def compiled(settings: Settings, issue: Issue) -> CompiledIssue:
    """The issue compiled as the dispatcher compiles it, from the cache when it has not changed.

    422 (Invalid) as service.compiled when it does not render.
    """
    key = _key(settings, issue)
    if key is None:
        return await service.compiled(settings, issue)
    found = _done.get(key)
    if found is not None:
        _done.move_to_end(key)
        return found
    # shield: a viewer who goes away does not cancel the compile the others wait for.
    return await asyncio.shield(_start(key, settings, issue))


def warm(settings: Settings, issue: Issue) -> None:
    """Start compiling a just-saved version in the background, for the preview to come."""
    key = _key(settings, issue)
    if key is not None and key not in _done:
        _start(key, settings, issue)


def clear() -> None:
    """Forget every compiled issue (tests)."""
    _done.clear()
    _pending.clear()
