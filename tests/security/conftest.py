"""A tally of the hostile inputs tried, printed at the end of the run."""

from __future__ import annotations

from collections import Counter

import pytest

TRIED: Counter[str] = Counter()


def tried(kind: str, n: int = 1) -> None:
    """Count `n` hostile inputs of one kind (header, sandbox, html, redirect, csv)."""
    TRIED[kind] += n


def count_fuzz() -> None:
    """Count one schemathesis case run."""
    TRIED_FUZZ["cases"] += 1


TRIED_FUZZ: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TRIED_FUZZ:
        terminalreporter.write_line(f"schemathesis cases run: {TRIED_FUZZ['cases']}")
    if TRIED:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()))
        terminalreporter.write_line(f"injection cases tried: {sum(TRIED.values())} ({parts})")
