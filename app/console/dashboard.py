"""The dashboard at /admin: lists over time, the last issues, rates and the setup's state."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app import overview
from app.console.web import ConsoleUser, page, redirect
from app.deps import SessionDep, SettingsDep

router = APIRouter(prefix="/admin", tags=["console"])
WIDTH, HEIGHT, PAD = 640, 220, 40
# Distinct, colour-blind-safe hues (Okabe-Ito), each also named in the legend.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]


@dataclass
class Line:
    name: str
    colour: str
    points: str  # SVG polyline points
    last: int


@dataclass
class Chart:
    lines: list[Line]
    y_max: int
    first_day: str
    last_day: str


def chart(series: list[overview.ListSeries]) -> Chart | None:
    """Scale the series into the SVG's box; None when there is nothing to draw."""
    days = sorted({d for s in series for d, _ in s.points})
    if not days:
        return None
    y_max = max(1, *(n for s in series for _, n in s.points))
    span = max(1, (days[-1] - days[0]).days)
    lines = []
    for i, s in enumerate(series):
        coords = []
        for day, n in s.points:
            x = PAD + (WIDTH - 2 * PAD) * ((day - days[0]).days / span if len(days) > 1 else 1)
            y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * n / y_max
            coords.append(f"{x:.1f},{y:.1f}")
        lines.append(Line(s.name, COLOURS[i % len(COLOURS)], " ".join(coords), s.current))
    return Chart(lines, y_max, days[0].isoformat(), days[-1].isoformat())


@router.get("", include_in_schema=False)
async def dashboard(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser
) -> Response:
    """The dashboard."""
    state = request.app.state
    if not hasattr(state, "dashboard_cache"):
        state.dashboard_cache = {}
    history = await overview.list_history(session=session)
    figures = await overview.figures(
        session=session, settings=settings, transports=state.transports,
        cache=state.dashboard_cache,
    )  # fmt: skip
    return page(
        request, "console/dashboard.html", history=history, chart=chart(history),
        figures=figures, size=(WIDTH, HEIGHT, PAD),
        complaint_limit=overview.COMPLAINT_WARNING, bounce_limit=overview.BOUNCE_WARNING,
    )  # fmt: skip


@router.get("/", include_in_schema=False)
async def dashboard_slash() -> Response:
    return redirect("/admin")
