"""Which SMTP servers an issue or a message may go through: its `smtp_route`, checked.

A route is a list of server names (TIDINGS_SMTP_URL's `name=`, default the host; see
transport.py); None means every configured server. The dispatcher keeps to it per
message (Servers.pick), with each server's own budget and back-off.
"""

from __future__ import annotations

from app.delivery.transport import route_names
from app.errors import invalid


def check_route(smtp_url: str | None, route: list[str] | None, field: str = "smtp_route") -> None:
    """422 naming the configured servers unless every name in `route` is one (None: all)."""
    if route is None:
        return
    known = route_names(smtp_url)
    unknown = [n for n in route if n not in known]
    if unknown:
        raise invalid(field, f"no SMTP server is named {', '.join(map(repr, unknown))};"
                             f" the configured ones are: {', '.join(known)}")  # fmt: skip
