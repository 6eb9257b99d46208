"""Which SMTP servers an issue or a message may go through: its `smtp_route`, checked.

A route is a list of server names (TIDINGS_SMTP_URL's `name=`, default the host; see
transport.py); None means every configured server. The dispatcher keeps to it per
message (Servers.pick), with each server's own budget and back-off.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from app.errors import invalid


def smtp_entries(smtp_url: str) -> list[str]:
    """The entries of TIDINGS_SMTP_URL, a comma-separated list of URLs."""
    return [u for u in (u.strip() for u in smtp_url.split(",")) if u]


def route_of(url: str, default: str) -> str:
    """The route name an entry gives its server: `name=` in its query, else `default`."""
    query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    return query.get("name", "").strip() or default


def route_names(smtp_url: str | None) -> list[str]:
    """The route names TIDINGS_SMTP_URL gives its servers, in order, each once (nothing opened)."""
    names: list[str] = []
    for url in smtp_entries(smtp_url or "") or ["outbox://"]:
        if url.startswith(("outbox://", "memory://")):
            name = route_of(url, url.partition(":")[0])
        else:
            parts = urlsplit(url)
            name = route_of(url, parts.hostname or "")
        if name and name not in names:
            names.append(name)
    return names


def check_route(smtp_url: str | None, route: list[str] | None, field: str = "smtp_route") -> None:
    """422 naming the configured servers unless every name in `route` is one (None: all)."""
    if route is None:
        return
    known = route_names(smtp_url)
    unknown = [n for n in route if n not in known]
    if unknown:
        raise invalid(field, f"no SMTP server is named {', '.join(map(repr, unknown))};"
                             f" the configured ones are: {', '.join(known)}")  # fmt: skip
