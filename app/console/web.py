"""The console's shell: page rendering, flashes, the CSRF token of forms, headers, wiring.

`install()` includes every console router with `dependencies=GUARD` (guard.py: the
signed-in person, roles, CSRF checks and the audit), so no area can forget it. `page()`
renders a console template with the person, CSRF token, flashes, branding and navigation;
ConsoleMiddleware adds the security headers and carries flashes across a redirect.
`ConsoleUser` and `require_role` are re-exported here, where every area imports them.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.accounts.principal import PRESESSION_COOKIE, csrf_token_for
from app.accounts.scopes import has_role
from app.console.guard import GUARD, ConsoleUser, CurrentUser, LoginRequired, require_role
from app.errors import DomainError

__all__ = ["GUARD", "ConsoleUser", "CurrentUser", "flash", "install", "page", "redirect",
           "require_role", "set_cookie"]  # fmt: skip

CONSOLE_DIR = Path(__file__).parent
templates = Jinja2Templates(directory=CONSOLE_DIR / "templates")
FLASH_COOKIE = "tidings_flash"
# Scripts only from our own files; styles may be inline because issue previews are email
# HTML; nothing is framed by another site, and forms post only here.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data: https:; connect-src 'self'; frame-src 'self'; "
        b"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]
NAV = [
    ("Dashboard", "/admin", "viewer"),
    ("Lists", "/admin/lists", "viewer"),
    ("Subscribers", "/admin/subscribers", "viewer"),
    ("Segments", "/admin/segments", "viewer"),
    ("Imports", "/admin/imports", "viewer"),
    ("Bounces", "/admin/bounces", "viewer"),
    ("Issues", "/admin/issues", "viewer"),
    ("Media", "/admin/media", "viewer"),
    ("Layouts", "/admin/layouts", "viewer"),
    ("Webhooks", "/admin/webhooks", "viewer"),
    ("Settings", "/admin/settings", "viewer"),
    ("People", "/admin/people", "owner"),
    ("API keys", "/admin/keys", "owner"),
    ("Audit log", "/admin/audit", "owner"),
]


def flash(request: Request, message: str, kind: str = "info") -> None:
    """A message shown on the next page this browser sees (kind: info, success, error)."""
    request.state.flash_out = [*getattr(request.state, "flash_out", []), (kind, message)]


def redirect(url: str) -> RedirectResponse:
    """303 See Other: after a form post the browser GETs the next page."""
    return RedirectResponse(url, status_code=303)


def _serializer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.app.state.settings.secret_key_value, salt="console-flash")


def _take_flashes(request: Request) -> list[tuple[str, str]]:
    taken: list[tuple[str, str]] = []
    raw = request.cookies.get(FLASH_COOKIE)
    if raw:
        try:
            taken = [(str(k), str(m)) for k, m in _serializer(request).loads(raw)]
        except (BadSignature, ValueError, TypeError):
            taken = []
        request.state.flash_consumed = True
    taken += getattr(request.state, "flash_out", [])
    request.state.flash_out = []
    return taken


def csrf_token(request: Request) -> str:
    """The token this browser's forms carry; a pre-session cookie is made when there is none."""
    cookie = getattr(request.state, "csrf_cookie", None)
    if not cookie:
        cookie = request.state.csrf_cookie = secrets.token_urlsafe(24)
        request.state.new_presession = cookie
    return csrf_token_for(request.app.state.settings.secret_key_value, cookie)


def _nav(request: Request, user: CurrentUser | None) -> list[tuple[str, str]]:
    served = getattr(request.app.state, "console_pages", None)
    if served is None:
        served = {getattr(r, "path", "") for r in request.app.router.routes}
        served |= {p for _m, p in _all_get_paths(request.app)}
        request.app.state.console_pages = served
    if user is None:
        return []
    return [(label, url) for label, url, role in NAV if url in served and has_role(user.role, role)]


def _all_get_paths(app: FastAPI) -> set[tuple[str, str]]:
    try:
        from fastapi.routing import _iter_routes_with_context
    except ImportError:  # pragma: no cover
        return set()
    found = set()
    for route, context in _iter_routes_with_context(app.routes):
        target = context if context is not None else route
        found.add(("GET", getattr(target, "path", "")))
    return found


def branding(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    return {"name": settings.organisation_name, "address": settings.organisation_address}


def page(request: Request, name: str, **ctx: Any) -> HTMLResponse:
    """Render a console template with the person, CSRF token, flashes and branding."""
    status_code = int(ctx.pop("status_code", 200))
    user = getattr(request.state, "console_user", None)
    values = {
        "user": user,
        "csrf_token": csrf_token(request),
        "flashes": _take_flashes(request),
        "branding": branding(request),
        "nav": _nav(request, user),
        "current_path": request.url.path,
        **ctx,
    }
    response = templates.TemplateResponse(request, name, values, status_code=status_code)
    new = getattr(request.state, "new_presession", None)
    if new:
        set_cookie(request, response, PRESESSION_COOKIE, new, max_age=None)
    return response


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None
) -> None:
    """A console cookie: HttpOnly, SameSite=Lax, Secure when the public URL is https."""
    secure = request.app.state.settings.public_url.startswith("https://")
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="lax", secure=secure
    )


class ConsoleMiddleware:
    """Adds the console's security headers, and carries flashes across a redirect in a cookie."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/admin"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] not in _OURS]
                headers += SECURITY_HEADERS
                # Pages hold personal data: never cached. Our static files may be.
                static = scope["path"].startswith("/admin/static/")
                headers.append((b"cache-control", b"max-age=3600" if static else b"no-store"))
                headers += _flash_headers(scope)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


_OURS = {name for name, _ in SECURITY_HEADERS} | {b"cache-control"}


def _flash_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    state = scope.get("state", {})
    pending = state.get("flash_out") or []
    app = scope["app"]
    secure = "; Secure" if app.state.settings.public_url.startswith("https://") else ""
    if pending:
        value = URLSafeSerializer(app.state.settings.secret_key_value, salt="console-flash").dumps(
            pending
        )
        cookie = f"{FLASH_COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Lax{secure}"
        return [(b"set-cookie", cookie.encode())]
    if state.get("flash_consumed"):
        cookie = f"{FLASH_COOKIE}=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
        return [(b"set-cookie", cookie.encode())]
    return []


async def _login_required(request: Request, exc: Exception) -> Response:
    target = request.url.path if request.method == "GET" else "/admin"
    return redirect(f"/admin/login?next={target}" if target != "/admin" else "/admin/login")


async def _root() -> Response:
    """The site's root leads to the console (which asks for a sign-in)."""
    return redirect("/admin")


def install_routes(app: FastAPI, routers: list[APIRouter]) -> None:
    """The console's routes: its pages behind the guard, its static files, the site's root."""
    for r in routers:
        app.include_router(r, dependencies=GUARD, include_in_schema=False)  # HTML pages, not API
    app.mount("/admin/static", StaticFiles(directory=CONSOLE_DIR / "static"), name="console-static")
    app.add_api_route("/", _root, methods=["GET"], include_in_schema=False)


def install(app: FastAPI) -> None:
    """Wire the console into the app (its routes apart): middleware, error pages."""
    app.add_middleware(ConsoleMiddleware)
    app.add_exception_handler(LoginRequired, _login_required)
    api_handler = app.exception_handlers[DomainError]

    async def domain_error(request: Request, exc: Exception) -> Response:
        # A refusal in the console is a page saying why, not JSON, unless fetch() asked.
        wants_json = "application/json" in request.headers.get("accept", "")
        if not request.url.path.startswith("/admin") or wants_json:
            return await api_handler(request, exc)  # type: ignore[misc,no-any-return]
        assert isinstance(exc, DomainError)
        return page(request, "console/error.html", status_code=exc.status_code, error=exc.detail)

    app.add_exception_handler(DomainError, domain_error)
