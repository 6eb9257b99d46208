"""The shared Jinja2 environment of the public pages, and `render_page` to answer with one."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from app import branding, i18n

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


@lru_cache(maxsize=8)
def environment(lang: str = i18n.SOURCE_LANGUAGE) -> Environment:
    """The Jinja2 environment of the public pages in one language (one per catalogue).

    HTML-escaped, our stylesheet inlined; `{% trans %}` and `_()` read that catalogue.
    """
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True  # babel.cfg extracts with trimmed = true too
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["format_date"] = lambda value: i18n.format_date(value, lang)
    env.globals["css"] = Markup((STATIC_DIR / "style.css").read_text())  # noqa: S704 (our file)
    return env


def render_page(
    request: Request, template_name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render a page of app/web/templates as an HTML response with the public pages' headers.

    `context["lang"]` chooses its language; the installation's (TIDINGS_LANGUAGE) without it.
    """
    settings = request.app.state.settings
    values = {
        "request": request,
        "organisation": branding.current(settings).name,
        "branding": branding.current(settings),
        **context,
    }
    lang = values.get("lang")
    values["lang"] = lang = lang if i18n.is_shipped(lang) else i18n.default_language(settings)
    html = environment(lang).get_template(template_name).render(values)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def not_found_page(request: Request) -> HTMLResponse:
    """The 404 page for any bad link: it says nothing about whom the link was for."""
    return render_page(request, "not_found.html", {}, status_code=404)
