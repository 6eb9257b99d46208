"""The report's timeline as numbers a template draws into SVG: hours for 48 h, then days."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

WIDTH, HEIGHT, PAD = 640, 180, 28
HOURLY_FOR = timedelta(hours=48)


def mixed(items: list[dict[str, Any]], start: datetime | None) -> list[dict[str, Any]]:
    """Hourly rows for the first 48 hours after `start`, then one row per day."""
    if not items:
        return []
    start = start or items[0]["at"]
    out: list[dict[str, Any]] = []
    days: dict[datetime, dict[str, Any]] = {}
    for item in items:
        if item["at"] < start + HOURLY_FOR:
            out.append({**item, "bucket": "hour"})
            continue
        day = item["at"].replace(hour=0)
        cell = days.setdefault(day, {"at": day, "bucket": "day"})
        for key, value in item.items():
            if key != "at":
                cell[key] = cell.get(key, 0) + value
    return out + [days[d] for d in sorted(days)]


def lines(
    rows: list[dict[str, Any]], keys: tuple[str, ...] = ("opens", "clicks")
) -> dict[str, Any]:  # noqa: E501
    """SVG polyline points per key, scaled to the chart, and the axis figures."""
    top = max([1, *(r.get(k, 0) for r in rows for k in keys)])
    span = max(len(rows) - 1, 1)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def point(i: int, value: int) -> str:
        x = PAD + inner_w * i / span
        y = HEIGHT - PAD - inner_h * value / top
        return f"{x:.1f},{y:.1f}"

    return {
        "width": WIDTH, "height": HEIGHT, "pad": PAD, "top": top,
        "series": {k: " ".join(point(i, r.get(k, 0)) for i, r in enumerate(rows)) for k in keys},
        "first": rows[0]["at"] if rows else None, "last": rows[-1]["at"] if rows else None,
    }  # fmt: skip
