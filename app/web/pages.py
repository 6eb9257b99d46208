"""The shared Jinja2 environment of the public pages, and `render_page` to answer with one."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from app import branding

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

# Public pages run no script, fetch nothing from elsewhere but the images of an archived
# issue, and never leak their URL (which may hold a confirm or unsubscribe token) to
# another site through the Referer header.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja2 environment for every public page: HTML-escaped, with our stylesheet inlined."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["css"] = Markup((STATIC_DIR / "style.css").read_text())  # noqa: S704 (our file)
    return env


def render_page(
    request: Request, template_name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render a page of app/web/templates as an HTML response with the public pages' headers."""
    settings = request.app.state.settings
    values = {
        "request": request,
        "organisation": branding.current(settings).name,
        "branding": branding.current(settings),
        "lang": "en",
        **context,
    }
    html = environment().get_template(template_name).render(values)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def not_found_page(request: Request) -> HTMLResponse:
    """The 404 page for any bad link: it says nothing about whom the link was for."""
    return render_page(request, "not_found.html", {}, status_code=404)
