"""Attribute conditions: one key of `subscribers.attributes`, compared alike on both databases.

Numbers compare as numbers and text as text (`{"age": "34"}` never equals 34), text is
ordered by code point, `contains` is a case-insensitive substring of text or an element
of a list, and `exists` means present and not null.

SQLite keeps JSON as text and asks `json_type` / `json_extract`. PostgreSQL stores the
column as `json` (text, migration 0001), where every `attributes -> 'key'` parses the
whole document again; at a million rows the parse is the cost, so each condition reads
the key once, as a small jsonb value, and lets jsonb do the typed work: equality is
type-aware, and order goes through a fixed jsonpath filter (`strict $ ? (@ > $v)`) with
the value as a bound variable, which never compares a string with a number.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    JSON,
    String,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, JSONPATH
from sqlalchemy.sql.elements import ColumnElement

from app.models import Subscriber

_ORDER = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def attribute_clause(node: dict[str, Any], *, postgres: bool) -> ColumnElement[bool]:
    """The clause of one checked attribute condition."""
    op, value = node["op"], node.get("value", True)
    attr: _Postgres | _SQLite = (
        _Postgres(node["attribute"]) if postgres else _SQLite(node["attribute"])
    )
    if op == "exists":
        return attr.present() if value else ~func.coalesce(attr.present(), false())
    if op == "in":
        return attr.one_of(value)
    if op == "eq":
        return attr.equals(value)
    if op == "ne":
        return ~func.coalesce(attr.equals(value), false())
    if op == "contains":
        return attr.contains(value)
    return attr.ordered(op, value)


def _reads_as_json(text: str) -> bool:
    """Whether this text is also the JSON text of a number, true/false, null, list or object."""
    try:
        return not isinstance(json.loads(text), str)
    except ValueError:
        return False


def _like(value: str) -> str:
    """`value` as a LIKE pattern matched anywhere, its own % _ and \\ taken literally."""
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Postgres:
    def __init__(self, name: str) -> None:
        key = literal(name, String)
        self.node = Subscriber.attributes.op("->", return_type=JSON)(key)
        self.text = Subscriber.attributes.op("->>", return_type=String)(key)
        # Cast from the small extracted value: the document itself is parsed once.
        self.value = self.node.cast(JSONB)

    def present(self) -> ColumnElement[bool]:
        return func.json_typeof(self.node) != "null"

    def equals(self, value: Any) -> ColumnElement[bool]:
        if isinstance(value, str):
            return self._text_in([value])
        return self.value.op("=", is_comparison=True)(literal(value, JSONB))

    def one_of(self, values: list[Any]) -> ColumnElement[bool]:
        texts = [v for v in values if isinstance(v, str)]
        others = [literal(v, JSONB) for v in values if not isinstance(v, str)]
        parts = ([self._text_in(texts)] if texts else []) + (
            [self.value.in_(others)] if others else []
        )
        return or_(*parts)

    def _text_in(self, texts: list[str]) -> ColumnElement[bool]:
        # `->>` is the text of a string, but also of a number, true or an object ("34");
        # only a value that reads as such JSON needs the (second) type test.
        same = self.text.in_(texts) if len(texts) > 1 else self.text == texts[0]
        if any(_reads_as_json(t) for t in texts):
            return and_(same, func.json_typeof(self.node) == "string")
        return same

    def ordered(self, op: str, value: Any) -> ColumnElement[bool]:
        path = literal(f"strict $ ? (@ {_ORDER[op]} $v)", JSONPATH)
        return func.jsonb_path_exists(self.value, path, literal({"v": value}, JSONB))

    def contains(self, value: Any) -> ColumnElement[bool]:
        # ["a", 2] @> ["a"]; a scalar or an object never contains an array, so no type test.
        in_list = self.value.op("@>", is_comparison=True)(literal([value], JSONB))
        if not isinstance(value, str):
            return in_list
        # A simple CASE reads the key once for the test, then once in the branch taken.
        return case(
            {
                "string": func.lower(self.text, type_=String).like(_like(value), escape="\\"),
                "array": in_list,
            },
            value=func.json_typeof(self.node),
            else_=false(),
        )


class _SQLite:
    def __init__(self, name: str) -> None:
        self.path = literal('$."' + name + '"')
        self.type = func.json_type(Subscriber.attributes, self.path)
        self.raw = func.json_extract(Subscriber.attributes, self.path)

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
