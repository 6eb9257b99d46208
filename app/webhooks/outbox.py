"""The sender's side of the database: fan events out, claim due deliveries, record calls.

Each function is one short transaction of its own. On PostgreSQL the claim locks the
rows it picks with FOR UPDATE SKIP LOCKED and stamps a lease in the same transaction,
so two workers never hold one delivery at once; a worker that dies leaves a lease that
expires. SQLite runs one embedded worker, and its single writer makes the same
statements safe there. A result is written only while the lease is still ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, false, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import on_postgresql, utcnow
from app.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent

FAN_OUT_BATCH = 500


@dataclass(frozen=True)
class Claim:
    """A delivery held under our lease, with what its call needs."""

    id: int
    webhook_id: int
    attempts: int
    url: str
    secret_sealed: str
    event_id: str
    event_type: str
    event_data: dict[str, Any]
    event_at: datetime


@dataclass(frozen=True)
class Outcome:
    """What one call gave: a 2xx is `ok`; anything else is retried."""

    ok: bool
    status_code: int | None = None
    body: str | None = None
    error: str | None = None
    duration_ms: int = 0


async def fan_out(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """One delivery per enabled webhook subscribed to each new event; events handled."""
    async with sessionmaker() as s, s.begin():
        stmt = (
            select(WebhookEvent.id)
            .where(WebhookEvent.fanned_out == false())  # the partial index's own predicate
            .order_by(WebhookEvent.created_at)
            .limit(FAN_OUT_BATCH)
        )
        if on_postgresql(s):
            stmt = stmt.with_for_update(skip_locked=True)
        candidates = list((await s.scalars(stmt)).all())
        if not candidates:
            return 0
        # Flipped with a guard and RETURNING: of two senders that read the same events,
        # each fans out only those it flipped itself (SQLite reads outside the write lock).
        flipped = await s.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(candidates), WebhookEvent.fanned_out.is_(False))
            .values(fanned_out=True)
            .returning(WebhookEvent.id, WebhookEvent.type)
        )
        events = flipped.all()
        hooks = (
            await s.execute(select(Webhook.id, Webhook.events).where(Webhook.enabled.is_(True)))
        ).all()
        now = utcnow()
        rows = [
            {"webhook_id": hook_id, "event_id": event_id, "status": "pending", "attempts": 0,
             "next_attempt_at": now, "created_at": now}
            for event_id, kind in events
            for hook_id, wanted in hooks
            if kind in (wanted or ())
        ]  # fmt: skip
        if rows:
            await s.execute(insert(WebhookDelivery), rows)
        wanted = {r["event_id"] for r in rows}
        # No one wants it any more (its webhook went within the emitters' cache time).
        unwanted = [e[0] for e in events if e[0] not in wanted]
        if unwanted:
            await s.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(unwanted)))
        return len(candidates)


def _due(now: datetime) -> Any:
    return and_(
        WebhookDelivery.status == "pending",
        WebhookDelivery.next_attempt_at <= now,
        or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
    )


async def claim(
    sessionmaker: async_sessionmaker[AsyncSession], *, owner: str, limit: int,
    lease: timedelta, busy: dict[int, int], per_webhook: int,
) -> list[Claim]:  # fmt: skip
    """Lease up to `limit` due deliveries, at most `per_webhook` in flight per webhook."""
    now = utcnow()
    async with sessionmaker() as s, s.begin():
        stmt = (
            select(WebhookDelivery.id, WebhookDelivery.webhook_id)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(_due(now), Webhook.enabled.is_(True))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit * 4)
        )
        if on_postgresql(s):
            stmt = stmt.with_for_update(skip_locked=True, of=WebhookDelivery)
        picked: list[int] = []
        taken = dict(busy)
        for delivery_id, webhook_id in (await s.execute(stmt)).all():
            # One slow receiver must not take every slot from the others.
            if taken.get(webhook_id, 0) < per_webhook and len(picked) < limit:
                taken[webhook_id] = taken.get(webhook_id, 0) + 1
                picked.append(delivery_id)
        if not picked:
            return []
        await s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(picked), _due(now))
            .values(lease_owner=owner, lease_until=now + lease)
        )
        rows = await s.execute(
            select(WebhookDelivery.id, WebhookDelivery.webhook_id, WebhookDelivery.attempts,
                   Webhook.url, Webhook.secret_sealed, WebhookEvent.id, WebhookEvent.type,
                   WebhookEvent.data, WebhookEvent.created_at)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.id.in_(picked), WebhookDelivery.lease_owner == owner)
        )  # fmt: skip
        return [Claim(*row) for row in rows]


@dataclass(frozen=True)
class Policy:
    """Back-off between attempts, and when a failing webhook is disabled."""

    delays: tuple[float, ...]
    disable_after: timedelta  # failing without a single success for this long...
    disable_failures: int  # ...and at least this many failures in a row


async def record(
    sessionmaker: async_sessionmaker[AsyncSession], *, owner: str, claim: Claim,
    outcome: Outcome, policy: Policy,
) -> bool:  # fmt: skip
    """Log one call and move its delivery on; False when our lease was lost meanwhile."""
    now = utcnow()
    attempts = claim.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "lease_owner": None, "lease_until": None}
    if outcome.ok:
        values.update(status="delivered", finished_at=now)
    elif attempts > len(policy.delays):
        values.update(status="failed", finished_at=now)
    else:
        values["next_attempt_at"] = now + timedelta(seconds=policy.delays[attempts - 1])
    async with sessionmaker() as s, s.begin():
        moved = await s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == claim.id, WebhookDelivery.lease_owner == owner)
            .values(**values)
        )
        if not moved.rowcount:  # type: ignore[attr-defined]
            return False
        await s.execute(
            insert(WebhookAttempt).values(
                delivery_id=claim.id, attempted_at=now, status_code=outcome.status_code,
                response_body=outcome.body, error=outcome.error, duration_ms=outcome.duration_ms,
            )
        )  # fmt: skip
        hook = Webhook.id == claim.webhook_id
        if outcome.ok:
            await s.execute(update(Webhook).where(hook).values(
                consecutive_failures=0, failing_since=None))  # fmt: skip
            return True
        await s.execute(
            update(Webhook)
            .where(hook)
            .values(
                consecutive_failures=Webhook.consecutive_failures + 1,
                failing_since=func.coalesce(Webhook.failing_since, now),
            )
        )
        last = outcome.error or f"HTTP {outcome.status_code}"
        reason = (
            f"disabled: every call failed for {policy.disable_after} or longer "
            f"({policy.disable_failures} or more in a row); last: {last}"
        )
        await s.execute(
            update(Webhook)
            .where(hook, Webhook.enabled.is_(True),
                   Webhook.failing_since <= now - policy.disable_after,
                   Webhook.consecutive_failures >= policy.disable_failures)
            .values(enabled=False, disabled_at=now, disabled_reason=reason[:1000])
        )  # fmt: skip
        return True


async def prune(sessionmaker: async_sessionmaker[AsyncSession], *, older_than: timedelta) -> int:
    """Forget events older than `older_than` with nothing pending; their log goes with them."""
    cutoff = utcnow() - older_than
    pending = select(WebhookDelivery.id).where(
        WebhookDelivery.event_id == WebhookEvent.id, WebhookDelivery.status == "pending"
    )
    async with sessionmaker() as s, s.begin():
        old = select(WebhookEvent.id).where(
            WebhookEvent.created_at < cutoff, WebhookEvent.fanned_out.is_(True), ~pending.exists()
        )
        ids = list((await s.scalars(old.limit(FAN_OUT_BATCH))).all())
        if ids:
            doomed = select(WebhookDelivery.id).where(WebhookDelivery.event_id.in_(ids))
            await s.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(doomed)))
            await s.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(ids)))
            await s.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(ids)))
        return len(ids)
