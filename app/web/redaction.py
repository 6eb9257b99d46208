"""Paths as they may be written to a log: capability tokens and secrets replaced.

Links in our emails are bearer capabilities (`/u/<token>`, `/subscribe/confirm/<token>`,
the console's invitations and resets); a log line must not make a copy of one. The rule
is generic, not per route, so routes added later are covered too.
"""

from __future__ import annotations

import re

# A path segment this long of token characters is a capability, whatever route it is on.
_TOKEN_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_.~=%-]{20,}(?=/|$|\?)")
_SECRET_PARAM = re.compile(
    r"(?i)(?<=[?&])((?:secret|token|key|signature|sig|code|password)=|[^=&]+=(?=[^&]{20,}))"
    r"[^&]*"
)
REDACTED = "[redacted]"


def redact(path: str) -> str:
    """A request path (with its query) with every token-like segment and secret replaced."""
    path = _TOKEN_SEGMENT.sub(REDACTED, path)
    return _SECRET_PARAM.sub(lambda m: m[1] + REDACTED, path) if "?" in path else path
