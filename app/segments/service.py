"""Segments: save, count and delete rules; the clause that narrows an issue's recipients."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.db import on_postgresql, utcnow
from app.errors import Conflict, NotFound
from app.models import Issue, MailingList, Subscriber
from app.segments import rules as grammar
from app.segments.compiler import Context, compile_rule
from app.segments.models import Segment
from app.segments.schemas import SegmentIn, SegmentPatch

# An issue in one of these states will still read its segment when it starts or resumes.
IN_USE = ("draft", "scheduled", "sending", "paused")
BASE: grammar.Path = ("body", "rules")


def _slugs(rule: Any) -> set[str]:
    """Every list slug a checked rule names."""
    found: set[str] = set()
    stack = [rule]
    while stack:
        node = stack.pop()
        if "all" in node or "any" in node:
            stack.extend(node.get("all") or node.get("any"))
        elif "not" in node:
            stack.append(node["not"])
        elif "list" in node:
            found.add(node["list"])
    return found


async def clause_for(
    session: AsyncSession, rule: Any, base: grammar.Path = BASE, *, strict: bool = True
) -> ColumnElement[bool]:
    """Check a rule and compile it: the subscribers it matches; 422 naming where if it cannot."""
    grammar.check(rule, base)
    slugs = _slugs(rule)
    list_ids: dict[str, int] = {}
    if slugs:
        rows = await session.execute(
            select(MailingList.slug, MailingList.id).where(MailingList.slug.in_(slugs))
        )
        list_ids = {slug: list_id for slug, list_id in rows.all()}
    dialect = session.get_bind().dialect.name
    ctx = Context(dialect=dialect, list_ids=list_ids, now=utcnow(), strict=strict)
    return compile_rule(rule, ctx, base)


async def count_rule(*, session: AsyncSession, rule: Any, base: grammar.Path = BASE) -> int:
    """How many subscribers a rule matches now (whatever their status)."""
    clause = await clause_for(session, rule, base)
    if on_postgresql(session):
        # PostgreSQL cannot estimate a condition on a JSON key (it guesses 0.5%), so with one
        # beside a list it plans a nested loop that probes the list's index for a third of
        # the table. A count reads every match anyway: hash and merge joins are never much
        # worse, and at a million subscribers the loop is the difference (bench/segments.py).
        await session.execute(text("SET LOCAL enable_nestloop = off"))
    return int(
        await session.scalar(select(func.count()).select_from(Subscriber).where(clause)) or 0
    )


async def get(*, session: AsyncSession, segment_id: int) -> Segment:
    """The segment, or 404."""
    segment = await session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"segment {segment_id} not found")
    return segment


async def count(*, session: AsyncSession, segment_id: int) -> int:
    """How many subscribers a saved segment matches now."""
    segment = await get(session=session, segment_id=segment_id)
    return await count_rule(session=session, rule=segment.rules)


async def member_clause(session: AsyncSession, segment_id: int) -> ColumnElement[bool]:
    """The saved segment as a clause on the subscribers table, for fixing recipients."""
    segment = await get(session=session, segment_id=segment_id)
    return await clause_for(session, segment.rules, strict=False)


async def create(*, session: AsyncSession, data: SegmentIn) -> Segment:
    """A new segment; 422 naming where when its rule is outside the grammar."""
    await clause_for(session, data.rules)
    segment = Segment(name=data.name, rules=data.rules)
    session.add(segment)
    await session.flush()
    return segment


async def list_segments(
    *, session: AsyncSession, limit: int, after_id: int | None
) -> list[Segment]:
    """One page of segments by id."""
    query = select(Segment).order_by(Segment.id).limit(limit)
    if after_id is not None:
        query = query.where(Segment.id > after_id)
    return list((await session.scalars(query)).all())


async def update(*, session: AsyncSession, segment_id: int, data: SegmentPatch) -> Segment:
    """Rename a segment or change its rule; an issue already sending keeps its recipients."""
    segment = await get(session=session, segment_id=segment_id)
    if "rules" in data.model_fields_set:
        await clause_for(session, data.rules)
        segment.rules = data.rules
    if data.name is not None:
        segment.name = data.name
    segment.updated_at = utcnow()
    await session.flush()
    return segment


async def delete(*, session: AsyncSession, segment_id: int) -> None:
    """Delete a segment; 409 naming the unfinished issues that use it."""
    # Locked first (PostgreSQL): an issue naming it meanwhile waits on its foreign-key
    # check, so none can be given the segment after the look below and lose it to the
    # ON DELETE SET NULL. SQLite's one writer refuses the stale write instead.
    segment = await session.scalar(
        select(Segment).where(Segment.id == segment_id).with_for_update()
    )
    if segment is None:
        raise NotFound(f"segment {segment_id} not found")
    users = (
        await session.scalars(
            select(Issue.id)
            .where(Issue.segment_id == segment_id, Issue.status.in_(IN_USE))
            .order_by(Issue.id)
        )
    ).all()
    if users:
        names = ", ".join(str(i) for i in users[:20])
        raise Conflict(f"segment {segment_id} is used by unfinished issue(s) {names}")
    await session.delete(segment)
    await session.flush()


async def check_exists(session: AsyncSession, segment_id: int | None) -> None:
    """For the issues service: 422 at `segment` when an issue names a segment that is not there."""
    if segment_id is None:
        return
    if await session.get(Segment, segment_id) is None:
        raise grammar.RuleError(f"unknown segment: {segment_id}", ("body", "segment"))
