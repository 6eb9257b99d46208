"""What the audience pages (lists, subscribers, imports, bounces) share: forms and refusals."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import ValidationError

from app.errors import DomainError

EDITING_ROLES = ("owner", "editor")

# pydantic's messages name types ("String should have at most 200 characters"); these
# are what a person filling the form reads.
_FRIENDLY = {
    "string_too_long": "is too long",
    "string_too_short": "cannot be empty",
    "string_pattern_mismatch": "has characters that are not allowed",
    "missing": "is required",
    "too_long": "has too many entries",
    "dict_type": "must be an object of names and values",
}


def can_edit(user: Any) -> bool:
    """Whether this account may change lists and subscribers (a viewer only reads)."""
    return getattr(user, "role", None) in EDITING_ROLES


def field_errors(exc: ValidationError, labels: dict[str, str] | None = None) -> dict[str, str]:
    """The first message for each failing field, in words for the form."""
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "form"
        if field in errors:
            continue
        label = (labels or {}).get(field, field.replace("_", " ").capitalize())
        reason = _FRIENDLY.get(error["type"])
        message = str(error["msg"]).removeprefix("Value error, ")
        errors[field] = f"{label} {reason}" if reason else f"{label}: {message}"
    return errors


def refusal_field(exc: DomainError, default: str = "form") -> str:
    """The form field a service's located refusal points at."""
    return str(exc.loc[-1]) if exc.loc else default


async def read_form(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The form's single values (stripped of nothing) and its repeated ones."""
    form = await request.form()
    single = {k: v for k, v in form.items() if isinstance(v, str)}
    many: dict[str, list[str]] = {}
    for key in form:
        many[key] = [v for v in form.getlist(key) if isinstance(v, str)]
    return single, many
