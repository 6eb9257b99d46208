"""The segment rule grammar as data: `check(rule)` walks a rule and refuses what is outside it.

    RULE := {"all": [RULE, ...]} | {"any": [RULE, ...]} | {"not": RULE} | CONDITION

A refusal is a 422 whose `loc` is the path into the request body down to the bad key
(`["body", "rules", "all", 2, "op"]`), so a builder can point at the row to fix. The
walk is iterative in depth order but bounded (20 levels, 200 conditions, 64 KB), so a
hostile rule costs at most a few thousand steps before it is refused.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from app.errors import Invalid

MAX_DEPTH = 20
MAX_CONDITIONS = 200
MAX_BYTES = 64 * 1024
MAX_IN = 100
MAX_TEXT = 500

Path = tuple[str | int, ...]

ATTRIBUTE_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "exists")
FIELDS = ("email", "name", "created_at")
LIST_STATUSES = ("confirmed", "pending", "unsubscribed")
# "sent": the issue was delivered to them (a delivery of it is `sent`), whatever they did.
ENGAGEMENTS = ("opened", "clicked", "sent")
BOUNCES = ("hard", "soft", "any")
# Attribute names become a JSON path on SQLite ('$."name"'), so quotes and backslashes
# are kept out; CSV headers such as "First Name" or "plan.tier" still fit.
ATTRIBUTE_NAME = re.compile(r"[^\W][\w .\-]{0,63}")
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class RuleError(Invalid):
    """A rule outside the grammar: 422 located at a path into the request body."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path

    def body(self) -> Any:
        return [{"loc": list(self.path), "msg": self.detail, "type": "value_error"}]


def check(rule: Any, base: Path = ("body", "rules")) -> None:
    """Refuse a rule outside the grammar, too deep or too large, naming where."""
    try:
        size = len(json.dumps(rule, separators=(",", ":")).encode())
    except (TypeError, ValueError, RecursionError):
        raise RuleError("a rule must be JSON", base) from None
    if size > MAX_BYTES:
        raise RuleError(f"a rule may be at most {MAX_BYTES} bytes (this one is {size})", base)
    conditions = 0
    stack: list[tuple[Any, Path, int]] = [(rule, base, 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise RuleError(f"a rule may nest at most {MAX_DEPTH} levels", path)
        if not isinstance(node, dict) or not node:
            raise RuleError("a rule is an object: all, any, not or a condition", path)
        group = _group_key(node, path)
        if group is None:
            conditions += 1
            if conditions > MAX_CONDITIONS:
                raise RuleError(f"a rule may hold at most {MAX_CONDITIONS} conditions", path)
            _check_condition(node, path)
        elif group == "not":
            stack.append((node["not"], (*path, "not"), depth + 1))
        else:
            members = node[group]
            if not isinstance(members, list) or not members:
                raise RuleError(f"{group} takes a non-empty list of rules", (*path, group))
            # Reversed, so refusals come in the order the rule is read.
            for index in reversed(range(len(members))):
                stack.append((members[index], (*path, group, index), depth + 1))


def _group_key(node: dict[str, Any], path: Path) -> str | None:
    groups = [k for k in ("all", "any", "not") if k in node]
    if not groups:
        return None
    extra = sorted(k for k in node if k != groups[0])
    if extra:
        raise RuleError(f"{groups[0]} takes no other key than itself", (*path, extra[0]))
    return groups[0]


def kind_of(node: dict[str, Any]) -> str:
    """Which condition a checked condition is: attribute, field, list, engaged or bounced."""
    return next(k for k in ("attribute", "field", "list", "engaged", "bounced") if k in node)


def _check_condition(node: dict[str, Any], path: Path) -> None:
    kinds = [k for k in ("attribute", "field", "list", "engaged", "bounced") if k in node]
    if len(kinds) != 1:
        raise RuleError(
            "a condition names exactly one of attribute, field, list, engaged, bounced", path
        )
    kind = kinds[0]
    allowed = {
        "attribute": ("attribute", "op", "value"),
        "field": ("field", "op", "value"),
        "list": ("list", "status"),
        "engaged": ("engaged", "issue", "within_days"),
        "bounced": ("bounced", "within_days"),
    }[kind]
    for key in node:
        if key not in allowed:
            raise RuleError(f"a {kind} condition has no key {key!r}", (*path, key))
    if kind == "attribute":
        name = node["attribute"]
        if not isinstance(name, str) or not ATTRIBUTE_NAME.fullmatch(name):
            raise RuleError(
                "an attribute name is 1-64 letters, digits, spaces, '.', '_' or '-'",
                (*path, "attribute"),
            )
        _check_comparison(node, path, kind="attribute")
    elif kind == "field":
        if node["field"] not in FIELDS:
            raise RuleError(f"field is one of {', '.join(FIELDS)}", (*path, "field"))
        _check_comparison(node, path, kind=node["field"])
    elif kind == "list":
        slug = node["list"]
        if not isinstance(slug, str) or not SLUG.fullmatch(slug):
            raise RuleError("list is a list slug", (*path, "list"))
        _one_of(node, "status", LIST_STATUSES, path)
    elif kind == "engaged":
        _one_of(node, "engaged", ENGAGEMENTS, path)
        issue = node.get("issue", "any")
        if issue != "any" and not (_is_int(issue) and 1 <= issue < 2**31):
            raise RuleError('issue is an issue id or "any"', (*path, "issue"))
        _check_days(node, path)
    else:
        _one_of(node, "bounced", BOUNCES, path)
        _check_days(node, path)


def _one_of(node: dict[str, Any], key: str, choices: tuple[str, ...], path: Path) -> None:
    if node.get(key) not in choices:
        raise RuleError(f"{key} is one of {', '.join(choices)}", (*path, key))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < 1e300


def _check_days(node: dict[str, Any], path: Path) -> None:
    if "within_days" in node and not (
        _is_int(node["within_days"]) and 1 <= node["within_days"] <= 36_500
    ):
        raise RuleError("within_days is a whole number of days, 1-36500", (*path, "within_days"))


def _check_comparison(node: dict[str, Any], path: Path, *, kind: str) -> None:
    op = node.get("op")
    ops: tuple[str, ...] = ATTRIBUTE_OPS
    if kind == "created_at":
        ops = ("eq", "ne", "lt", "le", "gt", "ge")
    elif kind in ("email", "name"):
        ops = ("eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "exists")
    if op not in ops:
        raise RuleError(f"op is one of {', '.join(ops)}", (*path, "op"))
    where = (*path, "value")
    if op == "exists":
        if not isinstance(node.get("value", True), bool):
            raise RuleError("exists takes true or false (or no value)", where)
        return
    if "value" not in node:
        raise RuleError(f"{op} needs a value", where)
    value = node["value"]
    if op == "in":
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN:
            raise RuleError(f"in takes a list of 1-{MAX_IN} values", where)
        for index, item in enumerate(value):
            _check_scalar(item, kind, "eq", (*where, index))
        return
    _check_scalar(value, kind, op, where)


def _check_scalar(value: Any, kind: str, op: str, where: Path) -> None:
    if kind == "created_at":
        if not isinstance(value, str) or as_datetime(value) is None:
            raise RuleError("created_at compares with an ISO 8601 date-time with an offset", where)
        return
    if isinstance(value, str):
        if len(value) > MAX_TEXT or "\x00" in value:
            raise RuleError(f"a text value is at most {MAX_TEXT} characters, without NUL", where)
        return
    if kind in ("email", "name"):
        raise RuleError(f"{kind} compares with text", where)
    if isinstance(value, bool):
        if op not in ("eq", "ne"):
            raise RuleError(f"{op} compares numbers or text, not true/false", where)
        return
    if not _is_number(value):
        raise RuleError("a value is text, a number or true/false", where)


def as_datetime(value: str) -> datetime | None:
    """An aware datetime from ISO 8601 text, or None when it is not one."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
