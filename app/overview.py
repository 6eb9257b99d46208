"""The dashboard's figures: list sizes over time, the last issues, rates, and the setup.

At a million subscribers nothing here counts on a page load. Member counts come from
`list_count_snapshots`, refreshed at most every SNAPSHOT_EVERY (one GROUP BY over the
(list_id, status) index), which also keeps one row per list per day for the chart; the
issues' figures and the setup checks are kept per process for FIGURES_EVERY.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import ListCountSnapshot
from app.config import Settings
from app.db import utcnow
from app.issues import service as issues
from app.models import MESSAGES_ISSUE, Issue, MailingList
from app.subscribers import service as audience

SNAPSHOT_EVERY = timedelta(minutes=5)
FIGURES_EVERY = 60.0
HISTORY_DAYS = 30
COMPLAINT_WARNING = 0.003  # Gmail's and Yahoo's bulk-sender ceiling
BOUNCE_WARNING = 0.02


@dataclass
class ListSeries:
    slug: str
    name: str
    points: list[tuple[date, int]]  # confirmed members by day

    @property
    def current(self) -> int:
        return self.points[-1][1] if self.points else 0


async def list_history(*, session: AsyncSession) -> list[ListSeries]:
    """Confirmed members of every list by day, over the last HISTORY_DAYS."""
    await _refresh_snapshots(session)
    since = date.today() - timedelta(days=HISTORY_DAYS)
    rows = await session.execute(
        select(
            MailingList.slug, MailingList.name, ListCountSnapshot.day, ListCountSnapshot.confirmed
        )
        .join(ListCountSnapshot, ListCountSnapshot.list_id == MailingList.id)
        .where(ListCountSnapshot.day >= since)
        .order_by(MailingList.id, ListCountSnapshot.day)
    )
    series: dict[str, ListSeries] = {}
    for slug, name, day, confirmed in rows:
        series.setdefault(slug, ListSeries(slug, name, [])).points.append((day, confirmed))
    return list(series.values())


async def _refresh_snapshots(session: AsyncSession) -> None:
    today = date.today()
    newest = await session.scalar(
        select(func.max(ListCountSnapshot.taken_at)).where(ListCountSnapshot.day == today)
    )
    if newest is not None and utcnow() - _aware(newest) < SNAPSHOT_EVERY:
        return
    list_ids = list(await session.scalars(select(MailingList.id)))
    counts = await audience.list_counts(session=session, list_ids=list_ids)
    # In a savepoint: when two dashboards refresh at once, one wins and the other reads it.
    try:
        async with session.begin_nested():
            await session.execute(delete(ListCountSnapshot).where(ListCountSnapshot.day == today))
            session.add_all(ListCountSnapshot(list_id=i, day=today, **c) for i, c in counts.items())
    except IntegrityError:
        return


def _aware(value: Any) -> Any:
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class Figures:
    issues: list[dict[str, Any]]
    complaint_rate: float
    bounce_rate: float
    sent: int
    setup: list[tuple[str, bool, str]]
    taken: float = field(default_factory=time.monotonic)

    @property
    def complaint_warning(self) -> bool:
        return self.complaint_rate > COMPLAINT_WARNING

    @property
    def bounce_warning(self) -> bool:
        return self.bounce_rate > BOUNCE_WARNING


async def figures(
    *, session: AsyncSession, settings: Settings, transports: list[Any], cache: dict[str, Any]
) -> Figures:
    """The last issues' figures, the rates over them, and the setup; kept FIGURES_EVERY."""
    kept = cache.get("figures")
    if isinstance(kept, Figures) and time.monotonic() - kept.taken < FIGURES_EVERY:
        return kept
    # Issue 0 holds the transactional messages (app/messages): not an issue anyone wrote.
    newest = select(Issue).where(Issue.id != MESSAGES_ISSUE).order_by(Issue.id.desc())
    last = list(await session.scalars(newest.limit(5)))
    rows = []
    for issue in last:
        stats = await issues.stats(session=session, issue_id=issue.id)
        rows.append({"id": issue.id, "subject": issue.subject, **stats})
    sent = sum(r["sent"] + r["bounced"] + r["complained"] for r in rows)
    complained = sum(r["complained"] for r in rows)
    bounced = sum(r["bounced"] for r in rows)
    result = Figures(
        issues=rows,
        complaint_rate=complained / sent if sent else 0.0,
        bounce_rate=bounced / sent if sent else 0.0,
        sent=sent,
        setup=await setup_state(settings, transports),
    )
    cache["figures"] = result
    return result


async def setup_state(settings: Settings, transports: list[Any]) -> list[tuple[str, bool, str]]:
    """(what, ok, how) for SMTP, DKIM, bounce processing and the public URL."""
    smtp = [t for t in transports if hasattr(t, "server")]
    if smtp:
        answers = await asyncio.gather(*(_smtp_answers(t.server.host, t.server.port) for t in smtp))
        smtp_ok = all(answers)
        smtp_how = ", ".join(
            f"{t.server.host}:{t.server.port} {'answers' if ok else 'does not answer'}"
            for t, ok in zip(smtp, answers, strict=True)
        )
    else:
        smtp_ok, smtp_how = False, "no TIDINGS_SMTP_URL: messages go to the outbox folder"
    dkim_file = settings.dkim_key_file
    dkim_ok = bool(
        settings.dkim_domain and settings.dkim_selector and dkim_file and dkim_file.exists()
    )
    dkim_how = (
        f"{settings.dkim_selector}._domainkey.{settings.dkim_domain}" if dkim_ok
        else "set TIDINGS_DKIM_DOMAIN, TIDINGS_DKIM_SELECTOR and TIDINGS_DKIM_KEY_FILE"
    )  # fmt: skip
    bounce_ways = [
        name for name, value in (
            ("VERP return path", settings.bounce_domain),
            ("webhook secret", settings.webhook_secret),
            ("Mailgun", settings.mailgun_signing_key),
            ("SendGrid", settings.sendgrid_verification_key),
            ("Postmark", settings.postmark_webhook_token),
        ) if value
    ]  # fmt: skip
    reachable = await _public_url_answers(settings.public_url)
    return [
        ("SMTP server answering", smtp_ok, smtp_how),
        ("DKIM signing configured", dkim_ok, dkim_how),
        (
            "Bounce processing configured",
            bool(bounce_ways),
            ", ".join(bounce_ways) or "set TIDINGS_BOUNCE_DOMAIN or a webhook secret",
        ),
        ("Public URL reachable", reachable, settings.public_url),
    ]


async def _smtp_answers(host: str, port: int) -> bool:
    """True when the server sends its 220 greeting within two seconds."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
    except (OSError, TimeoutError):
        return False
    try:
        greeting = await asyncio.wait_for(reader.readline(), 2.0)
        writer.write(b"QUIT\r\n")
        return greeting.startswith(b"220")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def _public_url_answers(public_url: str) -> bool:
    """True when {public_url}/healthz answers 200 within two seconds (no redirect followed)."""
    try:
        async with httpx.AsyncClient(timeout=2.0, follow_redirects=False) as client:
            r = await client.get(public_url.rstrip("/") + "/healthz")
    except (httpx.HTTPError, OSError):
        return False
    return r.status_code == 200
