"""The web console under /admin: a second face over the same services as the API."""

from __future__ import annotations

from fastapi import APIRouter

from app.console import (
    account,
    auth,
    bounces,
    dashboard,
    imports,
    issue_send,
    issues,
    keys,
    lists,
    media,
    people,
    segments,
    settings,
    subscriber_page,
    subscribers,
    templates,
    webhooks,
)
from app.console import audit as audit_pages

# Each area's router; app.console.web.install includes them all behind the console guard.
ROUTERS: list[APIRouter] = [
    auth.router,
    dashboard.router,
    account.router,
    people.router,
    keys.router,
    audit_pages.router,
    lists.router,
    subscribers.router,  # before subscriber_page: /subscribers/new is not an id
    subscriber_page.router,
    imports.router,
    bounces.router,
    segments.router,
    issues.router,  # before issue_send: its /issues/{id}/{action} is a catch-all
    issues.frames,
    issue_send.router,
    media.router,
    settings.router,
    templates.router,
    templates.frames,
    webhooks.router,
]
