"""Reading the outbox folder that `make run` writes mail to: who got what, and its links.

The `.eml` files are what an MTA would receive, so their text is quoted-printable or
base64 and a link copied from `cat` breaks at a soft line break. `tidings outbox` prints
the newest messages decoded, with their links whole, for the five-minute tour.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from pathlib import Path

LINK = re.compile(r"https?://[^\s<>\"')\]]+")


@dataclass(frozen=True)
class OutboxMessage:
    path: Path
    to: str
    subject: str
    links: list[str]


def newest(folder: Path, count: int = 5) -> list[OutboxMessage]:
    """The `count` newest messages in an outbox folder, newest first, decoded."""
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [_read(path) for path in files[:count]]


def _read(path: Path) -> OutboxMessage:
    with path.open("rb") as fh:
        msg = email.message_from_binary_file(fh, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain", "html"))
    text = part.get_content() if part is not None else ""  # type: ignore[attr-defined]
    links = list(dict.fromkeys(m.rstrip(".,;") for m in LINK.findall(text)))
    return OutboxMessage(path, str(msg.get("To", "")), str(msg.get("Subject", "")), links)
