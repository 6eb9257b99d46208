"""The engagement settings, read from the app's Settings (TIDINGS_TRACKING and friends)."""

from __future__ import annotations

from typing import Literal

from app.config import Settings

Mode = Literal["off", "aggregate", "individual"]
PAUSE_AFTER = 1000  # messages before the guardrail judges a send's rates


def tracks(settings: Settings, issue_opens: bool, issue_clicks: bool) -> tuple[bool, bool]:
    """(opens, clicks) tracked for an issue with these flags under the installation's mode."""
    if settings.tracking == "off":
        return False, False
    return bool(issue_opens), bool(issue_clicks)


def issue_defaults(settings: Settings) -> dict[str, bool]:
    """track_opens/track_clicks of a new issue: on unless the installation tracks nothing."""
    on = settings.tracking != "off"
    return {"track_opens": on, "track_clicks": on}
