"""Roles and scopes, and the one table that says which scope each route needs.

Every API route and every console write is checked here and nowhere else: a route
decides nothing about who may call it. A write this table does not name needs `admin`,
so a new route is closed until someone opens it on purpose (and the route-table test in
tests/security names any route that answers without these checks).
"""

from __future__ import annotations

import re

SCOPES = ("read", "subscribers", "issues", "send", "admin")
ROLES = ("owner", "editor", "viewer")
ROLE_RANK = {"viewer": 0, "editor": 1, "owner": 2}
ROLE_SCOPES = {
    "owner": frozenset(SCOPES),
    "editor": frozenset({"read", "subscribers", "issues", "send"}),
    "viewer": frozenset({"read"}),
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# (methods or None for any, path pattern, scope). First match wins; a pattern
# matches a request path and its route template alike ("[^/]+" for each parameter).
#
#   admin        keys, the audit log, settings, branding and layouts (writes), and the
#                webhooks, reads included: a webhook's URL often carries the receiver's
#                own secret, and its log holds what was sent about people
#   read         every other GET, and POST /segments/count (a rule counted, not saved)
#   send         sending, pausing, testing and (de)activating issues; transactional messages
#   issues       issues, media, templates (what is written and shown)
#   subscribers  lists, subscribers, imports, bounces, and segments (who is written to)
#
# The console goes by role, not scope (console_role): its webhook pages are an editor's.
_ISSUES = r"^/api/v1/(issues|media|layouts|templates|triggers)(/|$)"
_SEND = r"^/api/v1/issues/[^/]+/(send|pause|resume|cancel|test|activate|deactivate)$"
_AUDIENCE = r"^/api/v1/(lists|subscribers|bounces|import|exports?|segments)(/|$)"
_API_RULES: list[tuple[frozenset[str] | None, re.Pattern[str], str]] = [
    (None, re.compile(r"^/api/v1/(api-keys|audit|accounts|webhooks)(/|$)"), "admin"),
    (_WRITES, re.compile(r"^/api/v1/(settings|branding|layouts)(/|$)"), "admin"),
    (SAFE_METHODS, re.compile(r"^/api/v1/"), "read"),
    (frozenset({"POST"}), re.compile(r"^/api/v1/segments/count$"), "read"),
    (None, re.compile(_SEND), "send"),
    (None, re.compile(r"^/api/v1/messages(/|$)"), "send"),
    (None, re.compile(_ISSUES), "issues"),
    (None, re.compile(_AUDIENCE), "subscribers"),
]
# Console writes a person does to themselves (signing in and out, their own factors).
_CONSOLE_SIGN_IN = re.compile(r"^/admin/(login|logout|password|static)(/|$)")
_CONSOLE_OWN = re.compile(r"^/admin/account(/|$)")
# Pages only owners see at all, and pages everyone reads but only owners change.
_OWNER_PAGES = re.compile(r"^/admin/(people|keys|audit)(/|$)")
_OWNER_WRITES = re.compile(r"^/admin/(settings|branding|layouts)(/|$)")


def api_scope(method: str, path: str) -> str:
    """The scope an /api/v1 request needs, from its method and route template."""
    for methods, pattern, scope in _API_RULES:
        if (methods is None or method in methods) and pattern.match(path):
            return scope
    return "read" if method in SAFE_METHODS else "admin"


def console_role(method: str, path: str) -> str | None:
    """The least role a console request needs; None for the sign-in pages."""
    if _CONSOLE_SIGN_IN.match(path):
        return None
    if _CONSOLE_OWN.match(path):
        return "viewer"  # everyone manages their own password, factors and sessions
    if _OWNER_PAGES.match(path) or (method not in SAFE_METHODS and _OWNER_WRITES.match(path)):
        return "owner"
    return "viewer" if method in SAFE_METHODS else "editor"


def has_role(role: str, needed: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]
