"""The app's routes as the tests see them: every method and path, with sample path values."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.routing import BaseRoute

try:  # FastAPI >= 0.12x keeps included routers lazily; walk them the way it does
    from fastapi.routing import _iter_routes_with_context
except ImportError:  # pragma: no cover (older FastAPI flattens routes on include)
    _iter_routes_with_context = None

PUBLIC_API = {("POST", "/api/v1/subscribe")}


def routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) for every HTTP route of the app, from app.routes."""
    found: set[tuple[str, str]] = set()
    for route, context in _flatten(app.routes):
        target = context if context is not None else route
        for method in getattr(target, "methods", None) or ():
            found.add((method, target.path))
    return sorted(found)


def _flatten(items: list[BaseRoute]) -> list[tuple[Any, Any]]:
    if _iter_routes_with_context is not None:
        return list(_iter_routes_with_context(items))
    return [(r, None) for r in items]


def openapi_routes(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, path template) for every operation in an OpenAPI document."""
    methods = {"get", "post", "put", "patch", "delete", "head", "options"}
    return sorted(
        (m.upper(), path)
        for path, item in schema.get("paths", {}).items()
        for m in item
        if m in methods
    )


def fill(path: str, value: str = "1") -> str:
    """A concrete URL for a path template: every {param} becomes `value`."""
    return re.sub(r"\{[^}]+\}", value, path)


def require_route(app: Any, method: str, path: str) -> None:
    """Fail when a route these tests guard is gone (renamed routes must not skip silently)."""
    if (method, path) not in routes(app):
        pytest.fail(f"{method} {path} is not served by the app any more")


# Console pages a browser without a session may open: signing in and one-time links.
CONSOLE_SIGN_IN = ("/admin/login", "/admin/password/")


def console_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every console route, HEAD left out (it mirrors GET)."""
    return [(m, p) for m, p in routes(app) if p.startswith("/admin") and m != "HEAD"]


def needs_session(path: str) -> bool:
    return not path.startswith(CONSOLE_SIGN_IN)
