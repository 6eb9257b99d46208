"""Request and response bodies of the segments API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
    rules: Any

    _named = field_validator("name")(_name)


class SegmentPatch(BaseModel):
    """A change to a segment: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    rules: Any = None

    _named = field_validator("name")(_name)


class RulesIn(BaseModel):
    """A rule to count before it is saved (the console's builder)."""

    model_config = ConfigDict(extra="forbid")

    rules: Any


class SegmentOut(BaseModel):
    """A segment as the API shows it."""

    id: int
    name: str
    rules: Any
    created_at: datetime
    updated_at: datetime


class SegmentPage(BaseModel):
    items: list[SegmentOut]
    next_cursor: str | None


class CountOut(BaseModel):
    count: int
