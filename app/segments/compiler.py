"""A checked rule compiled to one SQLAlchemy boolean clause on the subscribers table.

Values are always bound parameters; nothing a user wrote becomes SQL text. Attribute
conditions are in attributes.py; fields, lists, bounces and engagement here. Text fields are ordered
byte-wise on both databases (`COLLATE "C"` on PostgreSQL, SQLite's own BINARY), so `lt`
gives the same people.

A condition on a missing attribute is unknown (NULL) in SQL; `not` turns unknown into
false first, so `{"not": C}` is exactly the people C does not match, on both databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    SQLColumnExpression,
    String,
    and_,
    exists,
    false,
    func,
    or_,
)
from sqlalchemy.sql.elements import ColumnElement

from app.engagement.models import EngagementEvent
from app.models import (
    MESSAGES_ISSUE,
    TRIGRAM,
    Bounce,
    Delivery,
    Subscriber,
    Subscription,
    search_text,
)
from app.segments.attributes import attribute_clause
from app.segments.rules import Path, RuleError, as_datetime, kind_of


@dataclass(frozen=True)
class Context:
    """What compiling needs besides the rule: the database kind, list ids, the time."""

    dialect: str
    list_ids: dict[str, int]
    now: datetime
    # Saving and counting refuse an unknown list; a send matches no one through it (a
    # list deleted after the segment was saved has no members).
    strict: bool = True


Clause = tuple[ColumnElement[bool], bool]  # the clause, and whether it may be NULL


def compile_rule(rule: dict[str, Any], ctx: Context, path: Path) -> ColumnElement[bool]:
    """The clause matching the subscribers a checked rule describes."""
    clause, _ = _node(rule, ctx, path)
    return clause


def _node(node: dict[str, Any], ctx: Context, path: Path) -> Clause:
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        parts = [_node(n, ctx, (*path, key, i)) for i, n in enumerate(node[key])]
        join = and_ if key == "all" else or_
        return join(*(c for c, _ in parts)), any(n for _, n in parts)
    if "not" in node:
        inner, nullable = _node(node["not"], ctx, (*path, "not"))
        return ~(func.coalesce(inner, false()) if nullable else inner), False
    kind = kind_of(node)
    if kind == "attribute":
        return attribute_clause(node, postgres=ctx.dialect == "postgresql"), True
    if kind == "field":
        return _field(node, ctx), True
    if kind == "list":
        return _member(node, ctx, path), False
    if kind == "bounced":
        return _bounced(node, ctx), False
    return _engaged(node, ctx), False


def _member(node: dict[str, Any], ctx: Context, path: Path) -> ColumnElement[bool]:
    list_id = ctx.list_ids.get(node["list"])
    if list_id is None:
        if not ctx.strict:
            return false()
        raise RuleError(f"unknown list: {node['list']}", (*path, "list"))
    return exists().where(
        Subscription.subscriber_id == Subscriber.id,
        Subscription.list_id == list_id,
        Subscription.status == node["status"],
    )


def _bounced(node: dict[str, Any], ctx: Context) -> ColumnElement[bool]:
    # Only bounces that count: a sender-side failure (5.7.x) says nothing of the address.
    kinds = ("hard", "soft") if node["bounced"] == "any" else (node["bounced"],)
    where = [Bounce.subscriber_id == Subscriber.id, Bounce.type.in_(kinds), Bounce.counts]
    if "within_days" in node:
        where.append(Bounce.created_at >= ctx.now - timedelta(days=node["within_days"]))
    return exists().where(*where)


def _engaged(node: dict[str, Any], ctx: Context) -> ColumnElement[bool]:
    if node["engaged"] == "sent":
        return _sent(node, ctx)
    # A person's events only (app/engagement): a click is an open whose pixel did not load.
    # Events name people only under TIDINGS_TRACKING=individual; otherwise nobody matches.
    kinds = ("open", "click") if node["engaged"] == "opened" else ("click",)
    where = [EngagementEvent.subscriber_id == Subscriber.id, EngagementEvent.kind.in_(kinds),
             EngagementEvent.machine.is_(False)]  # fmt: skip
    if node["issue"] != "any":
        where.append(EngagementEvent.issue_id == node["issue"])
    if "within_days" in node:
        where.append(EngagementEvent.at >= ctx.now - timedelta(days=node["within_days"]))
    return exists().where(*where)


def _sent(node: dict[str, Any], ctx: Context) -> ColumnElement[bool]:
    # Delivered, by the per-recipient log: known in every tracking mode. Transactional
    # messages (the system issue) are no issue anyone was sent.
    where = [Delivery.subscriber_id == Subscriber.id, Delivery.status == "sent"]
    if node["issue"] != "any":
        where.append(Delivery.issue_id == node["issue"])
    else:
        where.append(Delivery.issue_id != MESSAGES_ISSUE)
    if "within_days" in node:
        where.append(Delivery.sent_at >= ctx.now - timedelta(days=node["within_days"]))
    return exists().where(*where)


def _text_order(expr: SQLColumnExpression[Any], ctx: Context) -> SQLColumnExpression[Any]:
    return expr.collate("C") if ctx.dialect == "postgresql" else expr


def _compare(expr: SQLColumnExpression[Any], op: str, value: Any) -> ColumnElement[bool]:
    return {
        "eq": expr == value,
        "ne": expr != value,
        "lt": expr < value,
        "le": expr <= value,
        "gt": expr > value,
        "ge": expr >= value,
    }[op]


def _lower(expr: SQLColumnExpression[Any]) -> ColumnElement[str]:
    return func.lower(expr, type_=String)


def _field(node: dict[str, Any], ctx: Context) -> ColumnElement[bool]:
    field, op, value = node["field"], node["op"], node.get("value", True)
    if field == "created_at":
        return _compare(Subscriber.created_at, op, as_datetime(value))
    column = Subscriber.email_key if field == "email" else Subscriber.name
    # The mailbox is compared as its key (lowercased), so every spelling of it matches.
    fold = (lambda v: v.lower()) if field == "email" else (lambda v: v)
    if op == "exists":
        present = and_(column.is_not(None), column != "")
        return present if value else ~present
    if op == "in":
        return column.in_([fold(v) for v in value])
    if op == "contains":
        needle = value.lower()
        exact = _lower(column).contains(needle, autoescape=True)
        if len(needle) < TRIGRAM:
            return exact
        # The search expression first: PostgreSQL's trigram index on it (migration 0017)
        # can then find the few rows among many; the field's own test keeps it exact.
        return and_(search_text().contains(needle, autoescape=True), exact)
    if op == "ne":
        return func.coalesce(column, "") != fold(value)
    return _compare(_text_order(column, ctx), op, fold(value))
