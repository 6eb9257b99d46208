"""A checked rule compiled to one SQLAlchemy boolean clause on the subscribers table.

Values are always bound parameters; nothing a user wrote becomes SQL text. Attributes
live in a JSON column (`json` on PostgreSQL, JSON text on SQLite), so each comparison
first asks the JSON type of the value and compares numbers as numbers and text as text
on both databases: `{"age": "30"}` never equals 30. Text is ordered byte-wise on both
(`COLLATE "C"` on PostgreSQL, SQLite's own BINARY), so `lt` gives the same people.

A condition on a missing attribute is unknown (NULL) in SQL; `not` turns unknown into
false first, so `{"not": C}` is exactly the people C does not match, on both databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    SQLColumnExpression,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from app.models import Bounce, Subscriber, Subscription
from app.segments.rules import Path, RuleError, as_datetime, kind_of

NO_TRACKING = "engagement conditions need tracking (not yet available)"


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
        return _attribute(node, ctx), True
    if kind == "field":
        return _field(node, ctx), True
    if kind == "list":
        return _member(node, ctx, path), False
    if kind == "bounced":
        return _bounced(node, ctx), False
    raise RuleError(NO_TRACKING, (*path, "engaged"))


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
        return _lower(column).contains(value.lower(), autoescape=True)
    if op == "ne":
        return func.coalesce(column, "") != fold(value)
    return _compare(_text_order(column, ctx), op, fold(value))


class _Json:
    """One attribute of `subscribers.attributes`, read the same way on both databases."""

    def __init__(self, name: str, ctx: Context) -> None:
        self.ctx = ctx
        self.pg = ctx.dialect == "postgresql"
        self.name = name
        if self.pg:
            self.node = Subscriber.attributes.op("->", return_type=JSON)(literal(name))
            self.type = func.json_typeof(self.node)
        else:
            self.path = literal('$."' + name + '"')
            self.type = func.json_type(Subscriber.attributes, self.path)

    def is_(self, kind: str) -> ColumnElement[bool]:
        """The attribute holds a value of this kind: number, text, boolean or array."""
        if self.pg:
            names = {"number": "number", "text": "string", "boolean": "boolean", "array": "array"}
            return self.type == names[kind]
        names_sqlite = {
            "number": ("integer", "real"),
            "text": ("text",),
            "boolean": ("true", "false"),
            "array": ("array",),
        }
        return self.type.in_(names_sqlite[kind])

    def text(self) -> ColumnElement[Any]:
        if self.pg:
            return Subscriber.attributes.op("->>", return_type=String)(literal(self.name))
        return func.json_extract(Subscriber.attributes, self.path, type_=String)

    def number(self) -> ColumnElement[Any]:
        if self.pg:
            # CASE orders the evaluation: the cast never sees text that is not a number.
            return case((self.is_("number"), cast(self.text(), Float)))
        return func.json_extract(Subscriber.attributes, self.path, type_=Float)


def _attribute(node: dict[str, Any], ctx: Context) -> ColumnElement[bool]:
    attr = _Json(node["attribute"], ctx)
    op, value = node["op"], node.get("value", True)
    if op == "exists":
        present = and_(attr.type.is_not(None), attr.type != "null")
        return present if value else ~func.coalesce(present, false())
    if op == "in":
        return or_(*(_scalar(attr, "eq", v, ctx) for v in value))
    if op == "contains":
        return _contains(attr, value, ctx)
    if op == "ne":
        return ~func.coalesce(_scalar(attr, "eq", value, ctx), false())
    return _scalar(attr, op, value, ctx)


def _scalar(attr: _Json, op: str, value: Any, ctx: Context) -> ColumnElement[bool]:
    if isinstance(value, bool):
        if attr.pg:
            return and_(attr.is_("boolean"), attr.text() == ("true" if value else "false"))
        return attr.type == ("true" if value else "false")
    if isinstance(value, str):
        return and_(attr.is_("text"), _compare(_text_order(attr.text(), ctx), op, value))
    return and_(attr.is_("number"), _compare(attr.number(), op, float(value)))


def _contains(attr: _Json, value: Any, ctx: Context) -> ColumnElement[bool]:
    """Text: a case-insensitive substring. A list: one element equal to the value."""
    if attr.pg:
        # jsonb containment: ["a", 2] @> ["a"]; numbers compare as numbers (2 = 2.0).
        element = cast(func.json_build_array(literal(value)), JSONB)
        in_list: ColumnElement[bool] = case(
            (attr.is_("array"), cast(attr.node, JSONB).op("@>", is_comparison=True)(element)),
            else_=false(),
        )
    else:
        each = func.json_each(Subscriber.attributes, attr.path).table_valued("type", "value")
        wanted = (
            each.c.type == "text"
            if isinstance(value, str)
            else each.c.type.in_(("integer", "real"))
        )
        in_list = and_(
            attr.is_("array"),
            exists(select(literal(1)).select_from(each).where(wanted, each.c.value == value)),
        )
    if not isinstance(value, str):
        return in_list
    substring = _lower(attr.text()).contains(value.lower(), autoescape=True)
    return or_(and_(attr.is_("text"), substring), in_list)
