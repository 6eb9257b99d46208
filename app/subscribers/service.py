"""Lists and subscribers: the rules of membership, consent, erasure and export.

Services only flush; the request's session is committed by its dependency.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    column,
    func,
    literal,
    or_,
    select,
    table,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import Conflict, Invalid, NotFound
from app.models import (
    Bounce,
    Delivery,
    Issue,
    IssueList,
    MailingList,
    Subscriber,
    Subscription,
    Suppression,
)
from app.subscribers.addresses import InvalidAddress, normalize, suppression_hash
from app.subscribers.memberships import set_membership
from app.subscribers.schemas import ListCreate, ListUpdate, SubscriberCreate, SubscriberUpdate
from app.webhooks.events import emit, subscriber_data

# --- lists -----------------------------------------------------------------------------


async def create_list(*, session: AsyncSession, data: ListCreate) -> MailingList:
    """Create a list; Conflict when the slug is taken."""
    if await session.scalar(select(MailingList.id).where(MailingList.slug == data.slug)):
        raise Conflict(f"a list with slug {data.slug!r} exists")
    mailing_list = MailingList(**data.model_dump())
    session.add(mailing_list)
    try:
        await session.flush()
    except IntegrityError:  # created by a concurrent request since the check
        raise Conflict(f"a list with slug {data.slug!r} exists") from None
    return mailing_list


async def get_list(*, session: AsyncSession, slug: str) -> MailingList:
    """The list with this slug; NotFound (it was named in the path)."""
    try:
        return (await lists_by_slug(session=session, slugs=[slug]))[0]
    except Invalid:
        raise NotFound(f"no list with slug {slug!r}") from None


async def browse_lists(
    *, session: AsyncSession, after: int, limit: int, public_only: bool = False
) -> list[MailingList]:
    stmt = select(MailingList).where(MailingList.id > after).order_by(MailingList.id)
    if public_only:
        stmt = stmt.where(MailingList.public.is_(True))
    return list(await session.scalars(stmt.limit(limit)))


# Kept by triggers on subscriptions (migration 0010): signed deltas per (list, status).
_COUNTS = table("list_member_counts", column("list_id"), column("status"), column("n"))
# Past this many delta rows per list read, PostgreSQL's are folded into one per (list, status).
FOLD_AT = 64
_FOLD = text(
    "WITH gone AS (DELETE FROM list_member_counts WHERE list_id = ANY(:ids)"
    " RETURNING list_id, status, n)"
    " INSERT INTO list_member_counts (list_id, status, n)"
    " SELECT list_id, status, sum(n) FROM gone GROUP BY list_id, status"
)


async def list_counts(*, session: AsyncSession, list_ids: list[int]) -> dict[int, dict[str, int]]:
    """Members of each list by subscription status, from the kept counts (no count per row)."""
    counts = {i: {"confirmed": 0, "pending": 0, "unsubscribed": 0} for i in list_ids}
    if not list_ids:
        return counts
    rows = (
        await session.execute(
            select(_COUNTS.c.list_id, _COUNTS.c.status, func.sum(_COUNTS.c.n), func.count())
            .where(_COUNTS.c.list_id.in_(list_ids))
            .group_by(_COUNTS.c.list_id, _COUNTS.c.status)
        )
    ).all()
    for list_id, status, total, _ in rows:
        counts[list_id][status] = int(total)
    deltas = sum(r[3] for r in rows)
    if deltas > FOLD_AT * len(list_ids) and session.get_bind().dialect.name == "postgresql":
        # Concurrent writers only add rows; a row they add after this DELETE's snapshot is
        # left for the next fold, so the sums never change by folding.
        await session.execute(_FOLD, {"ids": list_ids})
    return counts


async def update_list(*, session: AsyncSession, slug: str, data: ListUpdate) -> MailingList:
    mailing_list = await get_list(session=session, slug=slug)
    for key, value in data.model_dump(exclude_none=True).items():
        setattr(mailing_list, key, value)
    if "language" in data.model_fields_set:  # an explicit null returns to the default
        mailing_list.language = data.language
    await session.flush()
    return mailing_list


# An issue in these states will still read its lists: at send time, or while it sends.
ISSUE_STATES_NEEDING_LISTS = ("draft", "scheduled", "sending", "paused")


async def delete_list(*, session: AsyncSession, slug: str) -> None:
    """Delete a list; Conflict naming the issues that still target it and may yet send."""
    mailing_list = await get_list(session=session, slug=slug)
    blocking = (
        await session.execute(
            select(Issue.id, Issue.status)
            .join(IssueList, IssueList.issue_id == Issue.id)
            .where(
                IssueList.list_id == mailing_list.id,
                Issue.status.in_(ISSUE_STATES_NEEDING_LISTS),
            )
            .order_by(Issue.id)
        )
    ).all()
    if blocking:
        named = ", ".join(f"{issue_id} ({status})" for issue_id, status in blocking)
        raise Conflict(
            f"list {slug!r} is targeted by issue(s) {named}; "
            "remove it from them, or cancel them, first"
        )
    await session.delete(mailing_list)
    await session.flush()


async def lists_by_slug(
    *,
    session: AsyncSession,
    slugs: list[str],
    public_only: bool = False,
    loc: tuple[str, ...] = ("body", "lists"),
) -> list[MailingList]:
    """The lists named, in order, once each; Invalid naming every slug unknown (or not public).

    The one lookup of lists by slug: the admin API, the importer and issues all use it.
    """
    wanted = list(dict.fromkeys(slugs))
    stmt = select(MailingList).where(MailingList.slug.in_(wanted))
    found = {m.slug: m for m in await session.scalars(stmt)}
    if public_only:
        found = {s: m for s, m in found.items() if m.public}
    missing = [s for s in wanted if s not in found]
    if missing:
        what = "public list" if public_only else "list"
        names = ", ".join(repr(s) for s in missing)
        raise Invalid(f"no {what} with slug {names}", loc=loc)
    return [found[s] for s in wanted]


# --- subscribers -----------------------------------------------------------------------


def normalize_or_invalid(raw: str, *, check_deliverability: bool) -> tuple[str, str]:
    try:
        return normalize(raw, check_deliverability=check_deliverability)
    except InvalidAddress as exc:
        raise Invalid(f"invalid email address: {exc}", loc=("body", "email")) from None


async def is_suppressed(*, session: AsyncSession, key: str) -> bool:
    hashed = suppression_hash(key)
    return bool(await session.scalar(select(Suppression.email_hash).filter_by(email_hash=hashed)))


async def by_key(*, session: AsyncSession, key: str) -> Subscriber | None:
    return await session.scalar(select(Subscriber).where(Subscriber.email_key == key))


async def get_subscriber(*, session: AsyncSession, subscriber_id: int) -> Subscriber:
    subscriber = await session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound(f"no subscriber with id {subscriber_id}")
    return subscriber


def memberships(subscriber: Subscriber) -> list[dict[str, str]]:
    subs = sorted(subscriber.subscriptions, key=lambda s: s.mailing_list.slug)
    return [{"slug": s.mailing_list.slug, "status": s.status} for s in subs]


def subscriber_out(subscriber: Subscriber) -> dict[str, Any]:
    """The contract's subscriber object."""
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "attributes": subscriber.attributes or {},
        "status": subscriber.status,
        "blocklist_reason": subscriber.blocklist_reason,
        "lists": memberships(subscriber),
        "created_at": subscriber.created_at,
    }


async def create_subscriber(
    *, session: AsyncSession, data: SubscriberCreate, check_deliverability: bool
) -> Subscriber:
    """An admin's addition: confirmed (the admin vouches for consent) unless pending is asked."""
    address, key = normalize_or_invalid(data.email, check_deliverability=check_deliverability)
    lists = await lists_by_slug(session=session, slugs=data.lists)
    if await is_suppressed(session=session, key=key):
        raise Conflict(
            "this address is on the suppression list (erased or blocked); only the person's own "
            "sign-up through the public form can add it back"
        )
    existing = await by_key(session=session, key=key)
    if existing is not None:
        raise Conflict(f"a subscriber with this address exists (id {existing.id})")
    subscriber = Subscriber(
        email=address, email_key=key, name=data.name, attributes=data.attributes, subscriptions=[]
    )
    for mailing_list in lists:
        set_membership(subscriber, mailing_list, data.subscription_status, actor="admin")
    session.add(subscriber)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("a subscriber with this address exists") from None
    await emit(session, "subscriber.created", subscriber_data(subscriber))
    return subscriber


async def search_subscribers(
    *,
    session: AsyncSession,
    after: int,
    limit: int,
    q: str | None = None,
    list_slug: str | None = None,
    status: str | None = None,
) -> list[Subscriber]:
    """Subscribers by id; `status` is the membership's with a list, else the person's."""
    stmt = select(Subscriber).where(Subscriber.id > after).order_by(Subscriber.id).limit(limit)
    if q:
        stmt = stmt.where(await _matching(session, q.strip().lower()))
    if list_slug:
        mailing_list = await get_list(session=session, slug=list_slug)
        stmt = stmt.join(Subscription).where(Subscription.list_id == mailing_list.id)
        if status:
            if status not in ("pending", "confirmed", "unsubscribed"):
                raise Invalid(
                    "with a list, status is one of pending, confirmed, unsubscribed",
                    loc=("query", "status"),
                )
            stmt = stmt.where(Subscription.status == status)
    elif status:
        if status not in ("active", "blocklisted"):
            raise Invalid(
                "without a list, status is one of active, blocklisted", loc=("query", "status")
            )
        stmt = stmt.where(Subscriber.status == status)
    return list(await session.scalars(stmt))


# Trigram indexes (migration 0010) serve a LIKE '%x%' from three characters on. A shorter
# needle has no trigram: through the index it would read all of it, so it is asked as
# strpos/instr, which no index matches, and PostgreSQL walks the primary key in id order
# until the page is full (quick for one or two characters, which most rows contain).
TRIGRAM = 3


async def _matching(session: AsyncSession, needle: str) -> ColumnElement[bool]:
    """Rows whose address or lowercased name contains the needle, literally (no wildcards)."""
    email, name = Subscriber.email_key, func.lower(Subscriber.name)
    postgres = session.get_bind().dialect.name == "postgresql"
    if len(needle) < TRIGRAM:
        position = func.strpos if postgres else func.instr
        return or_(position(email, needle) > 0, position(name, needle) > 0)
    if postgres:
        # A plan made for the generic pattern cannot weigh it: ask for one per value, so a
        # rare needle goes through the indexes and a common one walks ids until the page fills.
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    return or_(email.contains(needle, autoescape=True), name.contains(needle, autoescape=True))


async def update_subscriber(
    *, session: AsyncSession, subscriber_id: int, data: SubscriberUpdate
) -> Subscriber:
    """Apply an admin's changes; memberships not named are left as they are."""
    subscriber = await get_subscriber(session=session, subscriber_id=subscriber_id)
    if data.blocklist_reason and data.status != "blocklisted":
        raise Invalid(
            "blocklist_reason goes with status 'blocklisted'", loc=("body", "blocklist_reason")
        )
    if data.lists is not None:
        # The last word on a slug named twice wins, as it would in two PATCHes.
        wanted = {m.slug: m.status for m in data.lists}
        lists = await lists_by_slug(session=session, slugs=list(wanted))
        for mailing_list in lists:
            set_membership(subscriber, mailing_list, wanted[mailing_list.slug], actor="admin")
    if data.name is not None:
        subscriber.name = data.name or None
    if data.attributes is not None:
        subscriber.attributes = data.attributes
    if data.status == "blocklisted":
        subscriber.status = "blocklisted"
        subscriber.blocklist_reason = data.blocklist_reason or "manual"
    elif data.status == "active":
        subscriber.status, subscriber.blocklist_reason = "active", None
    subscriber.updated_at = utcnow()
    await session.flush()
    return subscriber


async def erase_subscriber(*, session: AsyncSession, subscriber_id: int) -> None:
    """GDPR erasure: the row and its memberships go, a hash of the address stays suppressed."""
    subscriber = await get_subscriber(session=session, subscriber_id=subscriber_id)
    hashed = suppression_hash(subscriber.email_key)
    # Bounce reports keep a copy of the address; it is personal data too.
    await session.execute(
        update(Bounce)
        .where(
            or_(
                Bounce.subscriber_id == subscriber.id,
                func.lower(Bounce.email) == subscriber.email_key,
            )
        )
        .values(email=None, diagnostic=None)
    )
    # Deliveries keep no foreign key (it would cost fan-out a lookup per row): unlink them
    # here. Probing (issue, subscriber) per issue uses the unique index instead of a scan.
    await session.execute(
        update(Delivery)
        .where(
            tuple_(Delivery.issue_id, Delivery.subscriber_id).in_(
                select(Issue.id, literal(subscriber.id, BigInteger))
            )
        )
        .values(subscriber_id=None)
        .execution_options(synchronize_session=False)
    )
    if not await is_suppressed(session=session, key=subscriber.email_key):
        session.add(Suppression(email_hash=hashed, reason="erased"))
    await emit(session, "subscriber.erased", {"id": subscriber.id})
    await session.delete(subscriber)
    await session.flush()


async def export_subscriber(*, session: AsyncSession, subscriber_id: int) -> dict[str, Any]:
    """Every piece of data held on one person, as JSON-ready values."""
    subscriber = await get_subscriber(session=session, subscriber_id=subscriber_id)
    deliveries = await session.execute(
        select(Delivery, Issue.subject)
        .join(Issue, Issue.id == Delivery.issue_id)
        # Joining from issues lets the (issue, subscriber) index find the rows.
        .where(Delivery.subscriber_id == subscriber.id, Delivery.issue_id == Issue.id)
        .order_by(Delivery.id)
    )
    bounces = await session.scalars(
        select(Bounce).where(Bounce.subscriber_id == subscriber.id).order_by(Bounce.id)
    )
    return {
        "subscriber": {**subscriber_out(subscriber), "updated_at": subscriber.updated_at},
        "subscriptions": [
            {
                "slug": s.mailing_list.slug,
                "list_name": s.mailing_list.name,
                "status": s.status,
                "created_at": s.created_at,
                "confirmed_at": s.confirmed_at,
                "unsubscribed_at": s.unsubscribed_at,
            }
            for s in sorted(subscriber.subscriptions, key=lambda s: s.mailing_list.slug)
        ],
        "deliveries": [
            {
                "issue_id": d.issue_id,
                "issue_subject": subject,
                "status": d.status,
                "attempts": d.attempts,
                "message_id": d.message_id,
                "sent_at": d.sent_at,
                "unsubscribed_at": d.unsubscribed_at,
            }
            for d, subject in deliveries
        ],
        "bounces": [
            {
                "type": b.type,
                "source": b.source,
                "status": b.status,
                "diagnostic": b.diagnostic,
                "issue_id": b.issue_id,
                "created_at": b.created_at,
            }
            for b in bounces
        ],
        "exported_at": utcnow(),
    }
