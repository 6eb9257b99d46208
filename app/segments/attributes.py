"""Attribute conditions: one key of `subscribers.attributes`, compared alike on both databases.

Numbers compare as numbers and text as text (`{"age": "34"}` never equals 34), text is
ordered by code point, `contains` is a case-insensitive substring of text or an element
of a list, and `exists` means present and not null.

SQLite keeps JSON as text and asks `json_type` / `json_extract`. On PostgreSQL the column
is `json` (text), which every `->` parses again, so conditions read `attributes_jsonb`,
its stored jsonb copy (migration 0008): equality is jsonb's own, type-aware; order is a
fixed jsonpath filter (`strict $ ? (@ > $v)`) with the value bound as a variable, which
never compares a string with a number. Attributes whose JSON text holds \u0000 (which
jsonb cannot hold) are unknown to segments on both databases: no condition matches
them, and `not` of one does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    String,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, JSONPATH
from sqlalchemy.sql.elements import ColumnElement

from app.models import Subscriber

_ORDER = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}
# PostgreSQL only (migration 0008); not mapped, so the ORM never reads or writes it.
_JSONB = literal_column(f"{Subscriber.__tablename__}.attributes_jsonb", JSONB)


def attribute_clause(node: dict[str, Any], *, postgres: bool) -> ColumnElement[bool]:
    """The clause of one checked attribute condition."""
    op, value = node["op"], node.get("value", True)
    attr: _Postgres | _SQLite = (
        _Postgres(node["attribute"]) if postgres else _SQLite(node["attribute"])
    )
    if op == "exists":
        clause = attr.present() if value else ~func.coalesce(attr.present(), false())
    elif op == "in":
        clause = attr.one_of(value)
    elif op == "eq":
        clause = attr.equals(value)
    elif op == "ne":
        clause = ~func.coalesce(attr.equals(value), false())
    elif op == "contains":
        clause = attr.contains(value)
    else:
        clause = attr.ordered(op, value)
    return attr.readable(clause)


def _like(value: str) -> str:
    """`value` as a LIKE pattern matched anywhere, its own % _ and \\ taken literally."""
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Postgres:
    def __init__(self, name: str) -> None:
        key = literal(name, String)
        self.node = _JSONB.op("->", return_type=JSONB)(key)
        self.text = _JSONB.op("->>", return_type=String)(key)

    def readable(self, clause: ColumnElement[bool]) -> ColumnElement[bool]:
        return clause  # the stored copy is NULL already where \u0000 is

    def present(self) -> ColumnElement[bool]:
        return func.jsonb_typeof(self.node) != "null"

    def equals(self, value: Any) -> ColumnElement[bool]:
        return self.node.op("=", is_comparison=True)(literal(value, JSONB))

    def one_of(self, values: list[Any]) -> ColumnElement[bool]:
        return self.node.in_([literal(v, JSONB) for v in values])

    def ordered(self, op: str, value: Any) -> ColumnElement[bool]:
        path = literal(f"strict $ ? (@ {_ORDER[op]} $v)", JSONPATH)
        return func.jsonb_path_exists(self.node, path, literal({"v": value}, JSONB))

    def contains(self, value: Any) -> ColumnElement[bool]:
        # ["a", 2] @> ["a"]; a scalar or an object never contains an array, so no type test.
        in_list = self.node.op("@>", is_comparison=True)(literal([value], JSONB))
        if not isinstance(value, str):
            return in_list
        text = func.lower(self.text, type_=String).like(_like(value), escape="\\")
        return or_(and_(func.jsonb_typeof(self.node) == "string", text), in_list)


class _SQLite:
    def __init__(self, name: str) -> None:
        self.path = literal('$."' + name + '"')
        self.type = func.json_type(Subscriber.attributes, self.path)
        self.raw = func.json_extract(Subscriber.attributes, self.path)

    def readable(self, clause: ColumnElement[bool]) -> ColumnElement[bool]:
        # As on PostgreSQL, whose jsonb copy cannot hold \u0000: such attributes are unknown.
        return case((func.instr(Subscriber.attributes, literal("\\u0000")) > 0, null()),
                    else_=clause)  # fmt: skip

    def is_(self, *kinds: str) -> ColumnElement[bool]:
        return self.type.in_(kinds)

    def present(self) -> ColumnElement[bool]:
        return and_(self.type.is_not(None), self.type != "null")

    def equals(self, value: Any) -> ColumnElement[bool]:
        if isinstance(value, bool):
            return self.type == ("true" if value else "false")
        if isinstance(value, str):
            return and_(self.is_("text"), self.raw == value)
        return and_(self.is_("integer", "real"), self.raw == float(value))

    def one_of(self, values: list[Any]) -> ColumnElement[bool]:
        return or_(*(self.equals(v) for v in values))

    def ordered(self, op: str, value: Any) -> ColumnElement[bool]:
        kinds = ("text",) if isinstance(value, str) else ("integer", "real")
        bound = value if isinstance(value, str) else float(value)
        compare = {"lt": self.raw < bound, "le": self.raw <= bound,
                   "gt": self.raw > bound, "ge": self.raw >= bound}[op]  # fmt: skip
        return and_(self.is_(*kinds), compare)

    def contains(self, value: Any) -> ColumnElement[bool]:
        each = func.json_each(Subscriber.attributes, self.path).table_valued("type", "value")
        wanted = each.c.type == "text" if isinstance(value, str) else each.c.type.in_(
            ("integer", "real")
        )  # fmt: skip
        in_list = and_(
            self.is_("array"),
            exists(select(literal(1)).select_from(each).where(wanted, each.c.value == value)),
        )
        if not isinstance(value, str):
            return in_list
        text = func.lower(func.json_extract(Subscriber.attributes, self.path, type_=String))
        substring = text.like(_like(value), escape="\\")
        return or_(and_(self.is_("text"), substring), in_list)
