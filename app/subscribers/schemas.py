"""Request and response shapes of the lists and subscribers API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

# Every kind of line break and control character, Unicode's too (U+0085, U+2028, U+2029):
# names reach the To and List-Id headers, where a line break would be an injection.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Free text may have line breaks, but never NUL (PostgreSQL cannot store it) or other controls.
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control_chars(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain line breaks or control characters")
    return value


def _no_nul(value: str) -> str:
    if _TEXT_CONTROL.search(value):
        raise ValueError("must not contain NUL or control characters")
    return value


Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=200),
    AfterValidator(_no_control_chars),
]
ListTitle = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_control_chars),
]
Email = Annotated[str, StringConstraints(min_length=1, max_length=320)]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_nul)]
Attributes = Annotated[dict[str, Any], Field(max_length=100)]
SubscriptionStatus = Literal["pending", "confirmed", "unsubscribed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListCreate(Strict):
    slug: Slug
    name: ListTitle
    description: Description = ""
    double_opt_in: bool = True
    public: bool = True


class ListUpdate(Strict):
    name: ListTitle | None = None
    description: Description | None = None
    double_opt_in: bool | None = None
    public: bool | None = None


class ListCounts(BaseModel):
    confirmed: int
    pending: int
    unsubscribed: int


class ListOut(BaseModel):
    id: int
    slug: str
    name: str
    description: str
    double_opt_in: bool
    public: bool
    created_at: datetime
    counts: ListCounts


class ListPage(BaseModel):
    items: list[ListOut]
    next_cursor: str | None


class SubscribeIn(Strict):
    """A public sign-up, from a website's form or script."""

    email: Email
    name: PersonName = ""
    lists: list[Slug] = Field(min_length=1, max_length=50)
    attributes: Attributes = Field(default_factory=dict)


class SubscribeOut(BaseModel):
    status: Literal["pending", "confirmed"]


class Membership(BaseModel):
    slug: Slug
    status: SubscriptionStatus


class SubscriberCreate(Strict):
    email: Email
    name: PersonName = ""
    lists: list[Slug] = Field(default_factory=list, max_length=1000)
    attributes: Attributes = Field(default_factory=dict)
    subscription_status: Literal["confirmed", "pending"] = "confirmed"


class SubscriberUpdate(Strict):
    """Fields to change; `attributes` replaces them all, `lists` sets the given memberships."""

    name: PersonName | None = None
    attributes: Attributes | None = None
    status: Literal["active", "blocklisted"] | None = None
    blocklist_reason: Literal["hard_bounce", "soft_bounce", "complaint", "manual"] | None = None
    lists: list[Membership] | None = Field(None, max_length=1000)


class SubscriberOut(BaseModel):
    id: int
    email: str
    name: str
    attributes: dict[str, Any]
    status: Literal["active", "blocklisted"]
    blocklist_reason: str | None
    lists: list[Membership]
    created_at: datetime


class SubscriberPage(BaseModel):
    items: list[SubscriberOut]
    next_cursor: str | None


class RowError(BaseModel):
    line: int
    error: str


class ImportOut(BaseModel):
    created: int
    updated: int
    skipped: int
    errors: list[RowError]
    errors_omitted: int = Field(0, description="row errors beyond the first 1000, not listed")
