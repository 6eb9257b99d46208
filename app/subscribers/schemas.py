"""Request and response shapes of the lists and subscribers API."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app import i18n

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


def _blank_is_none(value: str | None) -> str | None:
    return value or None  # no name is no name: templates' default() then works


OptionalName = Annotated[PersonName | None, AfterValidator(_blank_is_none)]
Email = Annotated[str, StringConstraints(min_length=1, max_length=320)]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_nul)]
# A shipped catalogue (app/locale); a list's None means the installation's TIDINGS_LANGUAGE.
Language = Annotated[str, AfterValidator(i18n.check)]

_ATTRIBUTE_KEY = re.compile(r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]{1,64}$")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _bounded_attributes(max_depth: int, max_bytes: int) -> Any:
    """A validator of attributes: names a template can use, bounded nesting and size.

    Attributes reach subjects and bodies of every issue: unbounded ones make every send
    slower, and the public form would let anyone store megabytes per address.
    """

    def check(value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if not _ATTRIBUTE_KEY.match(k)]
        if bad:
            raise ValueError(
                f"attribute names are 1-64 characters, no control characters: {bad[0][:70]!r}"
            )
        if _depth(value) > max_depth:
            raise ValueError(f"attributes may nest at most {max_depth} levels deep")
        if len(json.dumps(value, ensure_ascii=False).encode()) > max_bytes:
            raise ValueError(f"attributes take at most {max_bytes} bytes as JSON")
        return value

    return AfterValidator(check)


# An admin's (API, import): 100 names, a little structure, 16 KB in all.
Attributes = Annotated[
    dict[str, Any], Field(max_length=100), _bounded_attributes(max_depth=3, max_bytes=16_384)
]
# Anyone's (the public sign-up): 20 flat values, 2 KB in all.
PublicAttributes = Annotated[
    dict[str, str | int | float | bool | None],
    Field(max_length=20),
    _bounded_attributes(max_depth=1, max_bytes=2048),
]
SubscriptionStatus = Literal["pending", "confirmed", "unsubscribed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListCreate(Strict):
    slug: Slug
    name: ListTitle
    description: Description = ""
    double_opt_in: bool = True
    public: bool = True
    language: Language | None = None


class ListUpdate(Strict):
    name: ListTitle | None = None
    description: Description | None = None
    double_opt_in: bool | None = None
    public: bool | None = None
    language: Language | None = None  # null: back to the installation's language


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
    language: str | None  # None: the installation's TIDINGS_LANGUAGE
    created_at: datetime
    counts: ListCounts


class ListPage(BaseModel):
    items: list[ListOut]
    next_cursor: str | None


class SubscribeIn(Strict):
    """A public sign-up, from a website's form or script."""

    email: Email
    name: OptionalName = None
    lists: list[Slug] = Field(min_length=1, max_length=50)
    attributes: PublicAttributes = Field(default_factory=dict)


class SubscribeOut(BaseModel):
    status: Literal["pending", "confirmed"]


class Membership(BaseModel):
    slug: Slug
    status: SubscriptionStatus


class SubscriberCreate(Strict):
    email: Email
    name: OptionalName = None
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
    name: str | None
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
