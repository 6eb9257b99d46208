"""The product's refusals, one set for every service.

Services raise these and never import FastAPI: `app/web/error_handlers.py` answers them
over HTTP. This module stays free of the web framework so that a worker, which imports
services but serves no request, does not load FastAPI and Starlette (~16 MB a process).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request the rules refuse; `status_code` is what HTTP answers."""

    status_code = 400

    def __init__(
        self, detail: str, *, loc: tuple[str, ...] = (), headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.loc = loc  # where the bad input was, as in FastAPI's 422: ("body", "email")
        self.headers = headers

    def body(self) -> Any:
        if self.status_code == 422 or self.loc:
            loc = list(self.loc) or ["body"]
            return [{"loc": loc, "msg": self.detail, "type": "value_error"}]
        return self.detail


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Invalid(DomainError):
    status_code = 422


class Forbidden(DomainError):
    status_code = 403


class Unauthorized(DomainError):
    status_code = 401


class TooLarge(DomainError):
    status_code = 413


class Unsupported(DomainError):
    status_code = 415


class TooMany(DomainError):
    status_code = 429


class Unavailable(DomainError):
    status_code = 503


def invalid(field: str, message: str, *, where: str = "body") -> Invalid:
    """A 422 located at one field: `raise invalid("subject", "...")`."""
    return Invalid(message, loc=(where, field))
