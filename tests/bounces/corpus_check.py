"""Scoring of the real-bounce corpus: what is recorded against what each source expects."""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from app.bounces.dsn import BounceEvent, NotABounce, parse_bounce_email

CORPUS = Path(__file__).parent / "corpus"
CLASSES = ("hard", "soft", "policy", "complaint", "not_a_bounce")
COLUMNS = ("hard", "soft", "policy", "complaint", "ignored/422", "wrong address")
ADDRESS = re.compile(r"^[^@\s]+@[a-z0-9.-]+\.[a-z]{2,}$", re.I)


@dataclass(frozen=True)
class Row:
    """One corpus email and what its source says it is."""

    file: str
    source: str
    licence: str
    system: str
    expected: str
    recipient: str
    others: dict[str, str]


def rows() -> list[Row]:
    """The manifest's rows, comments skipped."""
    lines = [line for line in (CORPUS / "MANIFEST.tsv").read_text().splitlines() if line[:1] != "#"]
    found = []
    for r in csv.DictReader(lines, delimiter="\t"):
        others = dict(reversed(o.split(":", 1)) for o in r["other_recipients"].split())
        found.append(Row(r["file"], r["source_repository"], r["licence"], r["mail_system"],
                         r["expected"], r["recipient"].lower(), others))  # fmt: skip
    return found


def class_of(event: BounceEvent) -> str:
    """The corpus class an event records: policy when it is held against no one."""
    if event.type in ("complaint", "unsubscribe"):
        return "complaint"
    return event.type if event.counts else "policy"


def recorded(row: Row, events: list[BounceEvent] | None) -> str:
    """The column of the confusion table this email lands in."""
    if not events:
        return "ignored/422"
    emails = [e.email for e in events]
    if row.recipient == "-":
        return class_of(events[0]) if not any(emails) else "wrong address"
    if row.recipient == "*":
        if any(e and not ADDRESS.match(e) for e in emails):
            return "wrong address"
        return class_of(events[0])
    wanted = {row.recipient: row.expected, **row.others}
    by_email = {e.email: e for e in events}
    if row.recipient not in by_email or set(by_email) - set(wanted):
        return "wrong address"
    for address, klass in row.others.items():
        if address not in by_email or class_of(by_email[address]) != klass:
            return "wrong address"
    return class_of(by_email[row.recipient])


def run(row: Row) -> str:
    """Classify one corpus email the way POST /webhooks/dsn does."""
    try:
        events = parse_bounce_email((CORPUS / row.file).read_bytes())
    except NotABounce:
        events = None
    return recorded(row, events)


def right(row: Row, column: str) -> bool:
    if row.expected == "not_a_bounce":
        return column == "ignored/422"
    return column == row.expected


def table(results: list[tuple[Row, str]]) -> str:
    """The confusion table (expected × recorded) and the count per mail system."""
    counts = Counter((r.expected, column) for r, column in results)
    width = max(len(c) for c in COLUMNS) + 2
    lines = ["expected \\ recorded".ljust(22) + "".join(c.rjust(width) for c in COLUMNS)]
    for klass in CLASSES:
        total = sum(counts[(klass, c)] for c in COLUMNS)
        lines.append(f"{klass} ({total})".ljust(22)
                     + "".join(str(counts[(klass, c)]).rjust(width) for c in COLUMNS))  # fmt: skip
    good = sum(right(r, c) for r, c in results)
    lines.append(f"right: {good} of {len(results)} ({100 * good / len(results):.1f}%)")
    systems = Counter(r.system for r, _ in results)
    lines.append(f"mail systems: {len(systems)}")
    ranked = sorted(systems.items(), key=lambda x: (-x[1], x[0]))
    lines += [f"  {n:4}  {name}" for name, n in ranked]
    licences = Counter(f"{r.licence} ({r.source})" for r, _ in results)
    lines.append("sources: " + "; ".join(f"{k}: {v}" for k, v in sorted(licences.items())))
    return "\n".join(lines)
