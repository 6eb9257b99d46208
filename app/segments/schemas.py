"""Request and response bodies of the segments API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

RULES_DOC = (
    'A rule: {"all": [RULE, ...]}, {"any": [RULE, ...]}, {"not": RULE} or a condition: '
    '{"attribute": NAME, "op": eq|ne|lt|le|gt|ge|in|contains|exists, "value": ...}, '
    '{"field": email|name|created_at, "op": ..., "value": ...}, '
    '{"list": SLUG, "status": confirmed|pending|unsubscribed}, '
    '{"bounced": hard|soft|any, "within_days": N?}. At most 20 levels, 200 conditions, 64 KB.'
)
RULES_EXAMPLE = {
    "all": [
        {"list": "weekly", "status": "confirmed"},
        {"attribute": "plan", "op": "eq", "value": "pro"},
        {"not": {"bounced": "any", "within_days": 30}},
    ]
}
Rules = Annotated[Any, Field(description=RULES_DOC, examples=[RULES_EXAMPLE])]


def _name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or "\x00" in value:
        raise ValueError("a name is some text, without NUL")
    return value


class SegmentIn(BaseModel):
    """A new segment: a name and a rule of the grammar (checked by the service)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    rules: Rules

    _named = field_validator("name")(_name)


class SegmentPatch(BaseModel):
    """A change to a segment: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    rules: Rules = None

    _named = field_validator("name")(_name)


class RulesIn(BaseModel):
    """A rule to count before it is saved (the console's builder)."""

    model_config = ConfigDict(extra="forbid")

    rules: Rules


class SegmentOut(BaseModel):
    """A segment as the API shows it."""

    id: int
    name: str
    rules: Rules
    created_at: datetime
    updated_at: datetime


class SegmentPage(BaseModel):
    items: list[SegmentOut]
    next_cursor: str | None


class CountOut(BaseModel):
    count: int
