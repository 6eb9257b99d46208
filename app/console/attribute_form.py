"""A subscriber's attributes as a person edits them: key/value rows, or one JSON object."""

from __future__ import annotations

import json
from typing import Any

MAX_ATTRIBUTES = 100
MAX_KEY_CHARS = 100
EMPTY_ROWS = 3


def shown(value: Any) -> str:
    """A value as its row shows it: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def rows_of(attributes: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows of the form: one per attribute, then a few empty ones to add more."""
    rows = [(key, shown(value)) for key, value in attributes.items()]
    return rows + [("", "")] * EMPTY_ROWS


def attributes_from_rows(
    rows: list[tuple[str, str]], before: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The attributes the rows describe, or an error; a row left empty is no attribute.

    A row holds text, so a number or a list that was not touched keeps its type: the
    value shown for it (its JSON) coming back unchanged means the value is unchanged.
    """
    attributes: dict[str, Any] = {}
    for number, (raw_key, value) in enumerate(rows, start=1):
        key = raw_key.strip()
        if not key:
            if value.strip():
                return {}, f"Row {number} has a value but no name."
            continue
        if len(key) > MAX_KEY_CHARS:
            return {}, f"Row {number}: a name has at most {MAX_KEY_CHARS} characters."
        if key in attributes:
            return {}, f"Row {number}: the name {key!r} is used twice."
        if key in before and not isinstance(before[key], str) and value == shown(before[key]):
            attributes[key] = before[key]
        else:
            attributes[key] = value
    if len(attributes) > MAX_ATTRIBUTES:
        return {}, f"At most {MAX_ATTRIBUTES} attributes."
    return attributes, ""


def attributes_from_json(text: str) -> tuple[dict[str, Any], str]:
    """The attributes of a JSON object, or an error that says where the JSON is wrong."""
    if not text.strip():
        return {}, ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, f"This is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
    except RecursionError:
        return {}, "This JSON is nested too deeply."
    if not isinstance(value, dict):
        return {}, 'Attributes are one JSON object, like {"city": "Oslo", "plan": "pro"}.'
    return value, ""
