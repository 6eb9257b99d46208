"""Issues: authoring, the send state machine, stats and the delivery log.

Every status change is one guarded UPDATE (`... WHERE status IN (allowed)`), so two
admins, or an admin and the dispatcher, racing on one issue can never both win: the
loser's UPDATE matches no row and gets a 409.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import utcnow
from app.issues import compose, rendering
from app.issues.schemas import IssueIn, IssuePatch
from app.models import Delivery, Issue, IssueList, MailingList, Subscriber, Subscription

EDITABLE = ("draft", "scheduled")
# action: (statuses it may start from, the status it leads to)
MOVES: dict[str, tuple[tuple[str, ...], str]] = {
    "pause": (("sending",), "paused"),
    "resume": (("paused",), "sending"),
    "cancel": (("draft", "scheduled", "sending", "paused"), "cancelled"),
}


def _unprocessable(field: str, message: str) -> HTTPException:
    """A 422 in FastAPI's own validation shape, naming the failing field."""
    return HTTPException(422, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


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
        raise _unprocessable(_field_of(exc), str(exc)) from None


async def compiled(settings: Settings, issue: Issue) -> rendering.CompiledIssue:
    """The issue compiled for sending (off the event loop); 422 if it does not render."""
    try:
        return await asyncio.to_thread(compose.compile_for_send, settings, issue)
    except (rendering.BodyError, rendering.HeaderError) as exc:
        raise _unprocessable(_field_of(exc), str(exc)) from None


async def get(*, session: AsyncSession, issue_id: int) -> Issue:
    """The issue with its lists, or 404."""
    issue = await session.get(Issue, issue_id, populate_existing=True)
    if issue is None:
        raise HTTPException(404, f"issue {issue_id} not found")
    return issue


async def _lists(session: AsyncSession, slugs: list[str]) -> list[MailingList]:
    wanted = list(dict.fromkeys(slugs))
    rows = (await session.scalars(select(MailingList).where(MailingList.slug.in_(wanted)))).all()
    found = {lst.slug: lst for lst in rows}
    unknown = [slug for slug in wanted if slug not in found]
    if unknown:
        raise _unprocessable("lists", f"unknown list(s): {', '.join(unknown)}")
    return [found[slug] for slug in wanted]


async def create(*, session: AsyncSession, settings: Settings, data: IssueIn) -> Issue:
    """A new draft issue; 422 if it would not render or names an unknown list."""
    values = data.model_dump(exclude={"lists", "from_"}) | {"from_addr": data.from_}
    lists = await _lists(session, data.lists)
    await asyncio.to_thread(check_renderable, settings, values)
    issue = Issue(**values, status="draft", recipients=0)
    issue.lists = lists
    session.add(issue)
    await session.flush()
    return issue


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


async def _guarded(
    session: AsyncSession, issue_id: int, sources: tuple[str, ...], **values: Any
) -> bool:
    """UPDATE the issue only if its status is one of `sources`; False if it was not."""
    result = await session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.status.in_(sources))
        .values({"updated_at": utcnow(), **values})
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _refuse_move(session: AsyncSession, issue_id: int, what: str) -> HTTPException:
    """404 when the issue does not exist, else 409 saying why `what` is not possible now."""
    status = await session.scalar(select(Issue.status).where(Issue.id == issue_id))
    if status is None:
        return HTTPException(404, f"issue {issue_id} not found")
    return HTTPException(409, f"cannot {what} an issue that is {status}")


async def update_issue(
    *, session: AsyncSession, settings: Settings, issue_id: int, data: IssuePatch
) -> Issue:
    """Change a draft or scheduled issue; 409 once it has started sending."""
    issue = await get(session=session, issue_id=issue_id)
    if issue.status not in EDITABLE:
        raise HTTPException(409, f"cannot edit an issue that is {issue.status}")
    changes = data.model_dump(exclude_unset=True, exclude={"lists", "from_"})
    if "from_" in data.model_fields_set:
        changes["from_addr"] = data.from_
    if None in (changes.get(k, "") for k in ("subject", "preheader", "template", "format", "body")):
        raise _unprocessable("body", "only from may be null (back to the default From)")
    lists = await _lists(session, data.lists) if data.lists is not None else None
    merged = {
        "subject": issue.subject, "preheader": issue.preheader, "from_addr": issue.from_addr,
        "template": issue.template, "format": issue.format, "body": issue.body, **changes,
    }  # fmt: skip
    await asyncio.to_thread(check_renderable, settings, merged)
    if not await _guarded(session, issue_id, EDITABLE, **changes):
        raise await _refuse_move(session, issue_id, "edit")
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
        raise await _refuse_move(session, issue_id, "delete")


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
        .subquery()
    )
    return int(await session.scalar(select(func.count()).select_from(members)) or 0)


async def begin_sending(*, session: AsyncSession, issue_id: int) -> int | None:
    """Move a draft or scheduled issue to sending and queue its recipients.

    Returns the number of recipients, or None when the issue was no longer draft or
    scheduled (someone else started it). The caller's transaction makes both one step.
    """
    from app.delivery import queue

    now = utcnow()
    if not await _guarded(
        session, issue_id, EDITABLE, status="sending", started_at=now, status_reason=None
    ):
        return None
    count = int(await queue.enqueue_issue(session=session, issue_id=issue_id))
    # enqueue_issue stores the count too; stated here so stats never depend on that detail.
    await _guarded(session, issue_id, ("sending",), recipients=count)
    return count


async def start_send(
    *, session: AsyncSession, settings: Settings, issue_id: int, send_at: datetime | None
) -> tuple[str, int]:
    """Send now, or schedule for send_at; returns (status, recipients). 409 unless editable."""
    issue = await get(session=session, issue_id=issue_id)
    if issue.status not in EDITABLE:
        raise HTTPException(409, f"cannot send an issue that is {issue.status}")
    # Compile the whole message now: a broken body must never fail halfway through a send.
    await compiled(settings, issue)
    if send_at is not None and send_at > utcnow():
        if not await _guarded(
            session, issue_id, EDITABLE, status="scheduled", send_at=send_at, status_reason=None
        ):
            raise await _refuse_move(session, issue_id, "schedule")
        return "scheduled", await count_recipients(session=session, issue_id=issue_id)
    count = await begin_sending(session=session, issue_id=issue_id)
    if count is None:
        raise await _refuse_move(session, issue_id, "send")
    return "sending", count


async def move(*, session: AsyncSession, issue_id: int, action: str) -> Issue:
    """Pause, resume or cancel; 409 where the move makes no sense from the current status."""
    sources, target = MOVES[action]
    issue = await get(session=session, issue_id=issue_id)
    if action == "resume" and issue.status == "scheduled":
        return issue  # nothing is paused: it will start at send_at as planned
    now = utcnow()
    values: dict[str, Any] = {"status": target, "status_reason": None}
    if action == "cancel":
        values["finished_at"] = now
    if not await _guarded(session, issue_id, sources, **values):
        raise await _refuse_move(session, issue_id, action)
    if action == "cancel":
        from app.delivery import queue

        await queue.cancel_deliveries(session=session, issue_id=issue_id)
    return await get(session=session, issue_id=issue_id)


async def stats(*, session: AsyncSession, issue_id: int) -> dict[str, Any]:
    """The issue's counters from one GROUP BY over its deliveries (the issue_id, status index)."""
    issue = await get(session=session, issue_id=issue_id)
    rows = await session.execute(
        select(
            Delivery.status,
            func.count(),
            func.count(Delivery.unsubscribed_at),
            func.count(Delivery.sent_at),
            func.max(Delivery.sent_at),
        )
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    )
    by_status: dict[str, int] = {}
    unsubscribed = left = 0
    last_sent: datetime | None = None
    for status, count, unsub, with_sent_at, max_sent in rows:
        by_status[status] = count
        unsubscribed += unsub
        left += with_sent_at
        if max_sent is not None:
            # max() over a UTCDateTime comes back untyped on SQLite: normalise it.
            max_sent = _aware(max_sent)
            last_sent = max(last_sent, max_sent) if last_sent else max_sent
    end = utcnow() if issue.status == "sending" else last_sent
    rate = 0.0
    if left and issue.started_at and end:
        # At least a second: a few messages sent in a blink are not a rate of thousands.
        rate = round(left / max((end - issue.started_at).total_seconds(), 1.0), 2)
    return {
        "status": issue.status,
        "recipients": issue.recipients,
        "queued": by_status.get("queued", 0) + by_status.get("sending", 0),
        "sent": by_status.get("sent", 0),
        "failed": by_status.get("failed", 0),
        "bounced": by_status.get("bounced", 0),
        "complained": by_status.get("complained", 0),
        "unsubscribed": unsubscribed,
        "started_at": issue.started_at,
        "finished_at": issue.finished_at,
        "messages_per_second": rate,
    }


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def deliveries(
    *, session: AsyncSession, issue_id: int, status: str | None, limit: int, after: int
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the issue's per-recipient log, by delivery id."""
    await get(session=session, issue_id=issue_id)
    query = (
        select(Delivery, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue_id, Delivery.id > after)
        .order_by(Delivery.id)
        .limit(limit + 1)
    )
    if status:
        query = query.where(Delivery.status == status)
    rows = (await session.execute(query)).all()
    items: list[dict[str, Any]] = [
        {
            "id": d.id,
            "subscriber_id": d.subscriber_id,
            "email": email,
            "status": d.status,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "message_id": d.message_id,
            "sent_at": d.sent_at,
        }
        for d, email in rows[:limit]
    ]
    return items, rows[limit - 1][0].id if len(rows) > limit else None
