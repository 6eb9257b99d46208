"""The benchmark table: rows of figures with their targets, printed and written as JSON."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One figure: what, how much, and the target it is held to (if any)."""

    part: str
    what: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None  # None: no target, or not measured
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "MISS", None: ""}[self.ok]


@dataclass
class Results:
    """Everything one `python -m bench` run measured."""

    options: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    # The machine is shared: how busy it was is part of every figure.
    load_start: tuple[float, ...] = field(default_factory=lambda: _load())

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {row.what}: {_fmt(row.value)} {row.unit} {row.verdict} {row.note}".rstrip())
        return row

    def skip(self, part: str, why: str) -> None:
        self.add(Row(part, f"{part} skipped", None, "", note=why))

    def table(self) -> str:
        header = ("part", "measurement", "figure", "unit", "target", "", "note")
        lines = [header] + [
            (r.part, r.what, _fmt(r.value), r.unit, r.target, r.verdict, r.note) for r in self.rows
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(6)]
        out = []
        for n, line in enumerate(lines):
            cells = [
                c.ljust(w) if i != 2 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=False))
            ]
            out.append("  ".join(cells + [line[6]]).rstrip())
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def write(self, path: Path) -> None:
        data = {
            "machine": {
                "cpus": _cpus(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "seconds": round(time.time() - self.started, 1),
            "load_average": {"start": self.load_start, "end": _load()},
            "options": self.options,
            "rows": [asdict(r) for r in self.rows],
            "raw": self.raw,
        }
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def _load() -> tuple[float, ...]:
    """The 1, 5 and 15 minute load averages."""
    import os

    return tuple(round(x, 2) for x in os.getloadavg())


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"
