"""Issues: authoring and sending (the life cycle: lifecycle.py; stats, log: delivery_log.py).

Services raise app.errors' classes and never import FastAPI, so the CLI and the console
call them as the API does.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import utcnow
from app.delivery.routes import check_route
from app.engagement import settings as engagement_settings
from app.errors import Conflict, NotFound, invalid
from app.issues import compose, lifecycle, rendering, triggers
from app.issues.delivery_log import deliveries as deliveries  # re-exported: the API,
from app.issues.delivery_log import stats as stats  # console and overview read them here
from app.issues.lifecycle import EDITABLE
from app.issues.schemas import IssueIn, IssuePatch
from app.models import Issue, IssueList, MailingList, Subscriber, Subscription
from app.segments import service as segments
from app.subscribers.service import lists_by_slug

CONTENT = ("subject", "preheader", "from_addr", "template", "format", "body")


def _field_of(exc: Exception) -> str:
    message = str(exc).lower()
    if isinstance(exc, rendering.HeaderError):
        return "from" if message.startswith("from") else "subject"
    if "template" in message or "layout" in message:
        return "template"
    return "format" if message.startswith("format") else "body"


def check_renderable(settings: Settings, values: dict[str, Any]) -> None:
    """422 unless the issue compiles for any subscriber (subject, from, template, body)."""
    try:
        rendering.validate_issue(
            subject=values["subject"],
            preheader=values["preheader"],
            from_addr=values["from_addr"] or settings.from_,
            template=values["template"],
            format=values["format"],
            body=values["body"],
        )
    except (rendering.BodyError, rendering.HeaderError) as exc:
        raise invalid(_field_of(exc), str(exc)) from None


async def compiled(settings: Settings, issue: Issue) -> rendering.CompiledIssue:
    """The issue compiled for sending (off the event loop); 422 if it does not render."""
    try:
        return await asyncio.to_thread(compose.compile_for_send, settings, issue)
    except (rendering.BodyError, rendering.HeaderError) as exc:
        raise invalid(_field_of(exc), str(exc)) from None


async def get(*, session: AsyncSession, issue_id: int) -> Issue:
    """The issue with its lists, or 404."""
    issue = await session.get(Issue, issue_id, populate_existing=True)
    if issue is None:
        raise NotFound(f"issue {issue_id} not found")
    return issue


async def _lists(session: AsyncSession, slugs: list[str]) -> list[MailingList]:
    return await lists_by_slug(session=session, slugs=slugs)  # the one lookup by slug


def _public(lists: list[MailingList]) -> bool:
    """The default of in_archive: an issue to any private list stays out of the archive."""
    return all(lst.public for lst in lists)


async def create(*, session: AsyncSession, settings: Settings, data: IssueIn) -> Issue:
    """A new draft issue; 422 if it would not render or names an unknown list."""
    values = data.model_dump(exclude={"lists", "from_", "in_archive", "segment", "trigger"}) | {
        "from_addr": data.from_
    }
    for flag, default in engagement_settings.issue_defaults(settings).items():
        values[flag] = default if values[flag] is None else values[flag]
    lists = await _lists(session, data.lists)
    if data.trigger is not None:
        trigger_list = await triggers.check(session, data.trigger.list, data.trigger.after_seconds)
        if data.lists != [trigger_list.slug]:
            # Leaving the trigger's list must stop the sequence: it is the issue's only list.
            raise invalid("lists", "a triggered issue's lists must be [trigger.list]")
    await segments.check_exists(session, data.segment)
    check_route(settings.smtp_url, data.smtp_route)
    await asyncio.to_thread(check_renderable, settings, values)
    in_archive = _public(lists) if data.in_archive is None else data.in_archive
    issue = Issue(**values, status="draft", recipients=0, in_archive=in_archive,
                  segment_id=data.segment)  # fmt: skip
    issue.lists = lists
    session.add(issue)
    await session.flush()
    if data.trigger is not None:
        await triggers.store(session, issue.id, lists[0].id, data.trigger.after_seconds)
    return issue


async def duplicate(*, session: AsyncSession, issue_id: int) -> Issue:
    """A new draft with the content, lists and archive choice of an existing issue."""
    source = await get(session=session, issue_id=issue_id)
    copy = Issue(**{k: getattr(source, k) for k in CONTENT}, status="draft", recipients=0,
                 in_archive=source.in_archive, segment_id=source.segment_id,
                 track_opens=source.track_opens, track_clicks=source.track_clicks,
                 smtp_route=source.smtp_route)  # fmt: skip
    copy.lists = list(source.lists)
    session.add(copy)
    await session.flush()
    await triggers.copy(session, issue_id, copy.id)  # a welcome's copy is a welcome too
    return copy


async def list_issues(
    *, session: AsyncSession, status: str | None, limit: int, after: int
) -> tuple[list[Issue], int | None]:
    """One page of issues by id, and the id the next page starts after (None at the end)."""
    query = select(Issue).where(Issue.id > after).order_by(Issue.id).limit(limit + 1)
    if status:
        query = query.where(Issue.status == status)
    rows = list((await session.scalars(query)).all())
    more = len(rows) > limit
    return rows[:limit], rows[limit - 1].id if more else None


async def _set_in_archive(session: AsyncSession, issue_id: int, value: bool) -> Issue:
    # Not a status change: allowed in every status, so a sent issue can be withdrawn.
    await session.execute(
        update(Issue)
        .where(Issue.id == issue_id)
        .values(in_archive=value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return await get(session=session, issue_id=issue_id)


async def update_issue(
    *, session: AsyncSession, settings: Settings, issue_id: int, data: IssuePatch
) -> Issue:
    """Change a draft, scheduled or inactive issue; once started, only in_archive may change."""
    issue = await get(session=session, issue_id=issue_id)
    if "in_archive" in data.model_fields_set and data.in_archive is None:
        raise invalid("in_archive", "in_archive must be true or false")
    if issue.status not in lifecycle.CHANGEABLE:
        if data.model_fields_set <= {"in_archive"} and data.in_archive is not None:
            return await _set_in_archive(session, issue_id, data.in_archive)
        if issue.status == "active":
            raise Conflict("deactivate the triggered issue before editing it")
        raise Conflict(f"cannot edit an issue that is {issue.status} (only in_archive)")
    named = await triggers.patch(
        session, issue_id, status=issue.status, given="trigger" in data.model_fields_set,
        slug=data.trigger.list if data.trigger else None,
        after_seconds=data.trigger.after_seconds if data.trigger else None, lists=data.lists,
    )  # fmt: skip
    if named is not None:
        data = data.model_copy(update={"lists": named})
    changes = data.model_dump(exclude_unset=True, exclude={"lists", "from_", "segment", "trigger"})
    if "segment" in data.model_fields_set:
        await segments.check_exists(session, data.segment)
        changes["segment_id"] = data.segment
    if "from_" in data.model_fields_set:
        changes["from_addr"] = data.from_
    if "smtp_route" in data.model_fields_set:
        check_route(settings.smtp_url, data.smtp_route)
    if None in (changes.get(k, "") for k in ("track_opens", "track_clicks")):
        raise invalid("track_opens", "track_opens and track_clicks must be true or false")
    if None in (changes.get(k, "") for k in ("subject", "preheader", "template", "format", "body")):
        raise invalid("body", "only from may be null (back to the default From)")
    lists = await _lists(session, data.lists) if data.lists is not None else None
    if lists is not None and data.in_archive is None:
        changes["in_archive"] = _public(lists)  # new lists, new default
    merged = {k: getattr(issue, k) for k in CONTENT} | changes
    await asyncio.to_thread(check_renderable, settings, merged)
    if not await lifecycle.edit(session, issue_id, changes):
        raise await lifecycle.refusal(session, issue_id, "edit")
    if lists is not None:
        await session.execute(delete(IssueList).where(IssueList.issue_id == issue_id))
        await session.execute(
            insert(IssueList), [{"issue_id": issue_id, "list_id": lst.id} for lst in lists]
        )
    return await get(session=session, issue_id=issue_id)


async def delete_issue(*, session: AsyncSession, issue_id: int) -> None:
    """Delete a draft or scheduled issue; 409 once it has started sending."""
    result = await session.execute(
        delete(Issue)
        .where(Issue.id == issue_id, Issue.status.in_(EDITABLE))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise await lifecycle.refusal(session, issue_id, "delete")


async def count_recipients(*, session: AsyncSession, issue_id: int) -> int:
    """How many would receive the issue now: confirmed, active members of its lists, once each."""
    members = (
        select(Subscription.subscriber_id)
        .join(IssueList, IssueList.list_id == Subscription.list_id)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(
            IssueList.issue_id == issue_id,
            Subscription.status == "confirmed",
            Subscriber.status == "active",
        )
        .distinct()
    )
    segment_id = await session.scalar(select(Issue.segment_id).where(Issue.id == issue_id))
    if segment_id is not None:
        members = members.where(await segments.member_clause(session, segment_id))
    counted = members.subquery()
    return int(await session.scalar(select(func.count()).select_from(counted)) or 0)


async def start_send(
    *, session: AsyncSession, settings: Settings, issue_id: int, send_at: datetime | None
) -> tuple[str, int]:
    """Send now, or schedule for send_at; returns (status, recipients). 409 unless editable."""
    issue = await get(session=session, issue_id=issue_id)
    if await triggers.is_triggered(session, issue_id):
        raise Conflict("a triggered issue is not sent: POST /api/v1/issues/{id}/activate it")
    if issue.status not in EDITABLE:
        raise Conflict(f"cannot send an issue that is {issue.status}")
    # Compile the whole message now: a broken body must never fail halfway through a send.
    await compiled(settings, issue)
    if send_at is not None and send_at > utcnow():
        if not await lifecycle.schedule(session, issue_id, send_at):
            raise await lifecycle.refusal(session, issue_id, "schedule")
        return "scheduled", await count_recipients(session=session, issue_id=issue_id)
    count = await lifecycle.start(session, issue_id, inline_limit=settings.fanout_inline_limit)
    if count is None:
        raise await lifecycle.refusal(session, issue_id, "send")
    return "sending", count


async def set_active(
    *, session: AsyncSession, settings: Settings, issue_id: int, active: bool
) -> Issue:
    """Activate or deactivate a triggered issue; 409 for an ordinary one or a wrong status."""
    await get(session=session, issue_id=issue_id)
    if not await triggers.is_triggered(session, issue_id):
        raise Conflict("only a triggered issue can be activated; send this one")
    if active:
        await compiled(settings, await get(session=session, issue_id=issue_id))
    moved = await (lifecycle.activate if active else lifecycle.deactivate)(session, issue_id)
    if not moved:
        raise await lifecycle.refusal(session, issue_id, "activate" if active else "deactivate")
    return await get(session=session, issue_id=issue_id)


async def move(*, session: AsyncSession, issue_id: int, action: str) -> Issue:
    """Pause, resume or cancel; 409 where the move makes no sense from the current status."""
    issue = await get(session=session, issue_id=issue_id)
    if action == "resume" and issue.status == "scheduled":
        return issue  # nothing is paused: it will start at send_at as planned
    moves = {"pause": lifecycle.pause, "resume": lifecycle.resume, "cancel": lifecycle.cancel}
    if not await moves[action](session, issue_id):
        raise await lifecycle.refusal(session, issue_id, action)
    return await get(session=session, issue_id=issue_id)
