"""The public sign-up: the hot path of the API, so Core statements and few round trips.

One SELECT resolves the lists (with their language, which the confirmation speaks), the
person (if known), their memberships of those lists and whether the address is
suppressed; then one upsert of the person and one of the memberships. Known and unknown
addresses run the same statements and write alike (an upsert that meets a known address
still writes its row), so the time of the answer does not tell a stranger whether an
address is on file. The caller commits: the route one sign-up a transaction, the fast
path (signup_fast.py) several concurrent ones in one (group commit, signup_batch.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import utcnow
from app.errors import Invalid
from app.issues import triggers
from app.models import MailingList, Subscriber, Subscription, Suppression
from app.subscribers import memberships
from app.subscribers.addresses import suppression_hash
from app.subscribers.service import normalize_or_invalid
from app.webhooks.events import emit, membership_moved

_LOOKUP = (
    select(
        MailingList.id,
        MailingList.slug,
        MailingList.name,
        MailingList.double_opt_in,
        MailingList.public,
        MailingList.language,
        Subscriber.id.label("subscriber_id"),
        Subscriber.email,
        Subscriber.name.label("person_name"),
        Subscriber.status.label("person"),
        Subscription.status.label("membership"),
        exists()
        .where(Suppression.email_hash == bindparam("hash"))
        .label("suppressed"),  # fmt: skip
    )
    .select_from(MailingList)
    .outerjoin(Subscriber, Subscriber.email_key == bindparam("key"))
    .outerjoin(
        Subscription,
        (Subscription.subscriber_id == Subscriber.id) & (Subscription.list_id == MailingList.id),
    )
    .where(MailingList.slug.in_(bindparam("slugs", expanding=True)))
)


def _person_upsert(dialect: Any) -> Any:
    """Insert the person, or touch the known row (a write that changes nothing of hers)."""
    stmt = dialect.insert(Subscriber)
    return stmt.on_conflict_do_update(
        index_elements=[Subscriber.email_key], set_={"email_key": stmt.excluded.email_key}
    ).returning(Subscriber.id)


def _membership_upsert(dialect: Any) -> Any:
    """Insert memberships, or move them as memberships.stamps would; unchanged rows rewrite
    their own status, so a confirmed member's confirmed_at stays."""
    stmt = dialect.insert(Subscription)
    new = stmt.excluded
    confirming = (new.status == "confirmed") & (Subscription.status != "confirmed")
    leaving = (new.status == "unsubscribed") & (Subscription.status != "unsubscribed")
    return stmt.on_conflict_do_update(
        index_elements=[Subscription.subscriber_id, Subscription.list_id],
        set_={
            "status": new.status,
            "confirmed_at": case((confirming, new.confirmed_at), else_=Subscription.confirmed_at),
            "unsubscribed_at": case(
                (new.status == "confirmed", None),
                (leaving, new.unsubscribed_at),
                else_=Subscription.unsubscribed_at,
            ),
        },
    )


# Built once per backend: constructing them per request cost more than running them.
_UPSERTS = {
    name: (_person_upsert(dialect), _membership_upsert(dialect))
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


@dataclass
class SignUp:
    """The outcome of a public sign-up: the answer, and who needs a confirmation email."""

    status: str
    subscriber_id: int | None = None  # set when a confirmation email is to go out
    email: str = ""
    name: str | None = None
    list_names: list[str] = field(default_factory=list)
    languages: list[str | None] = field(default_factory=list)  # of the lists, for language_of


async def public_subscribe(
    *,
    conn: AsyncConnection,
    email: str,
    name: str | None,
    slugs: list[str],
    attributes: dict[str, Any],
    check_deliverability: bool,
) -> SignUp:
    """A sign-up from the public: the answer depends on the lists only, never on the person.

    Anonymous input never overwrites a known subscriber's name or attributes (anyone can type
    anyone's address). A blocklisted address gets the same answer and no email. An address on
    the suppression list, or a list the person left, is only taken back through the
    confirmation link, even on a single opt-in list (memberships.next_status, actor "public").
    The caller commits.
    """
    wanted = list(dict.fromkeys(slugs))
    refused: Invalid | None = None
    try:
        address, key = normalize_or_invalid(email, check_deliverability=check_deliverability)
    except Invalid as exc:
        address, key, refused = "", "", exc  # an unknown list is reported first
    params = {"key": key, "hash": suppression_hash(key), "slugs": wanted}
    rows = {r.slug: r for r in await conn.execute(_LOOKUP, params) if r.public}
    missing = [s for s in wanted if s not in rows]
    if missing:
        names = ", ".join(repr(s) for s in missing)
        raise Invalid(f"no public list with slug {names}", loc=("body", "lists"))
    if refused is not None:
        raise refused
    lists = [rows[s] for s in wanted]
    answer = "pending" if any(m.double_opt_in for m in lists) else "confirmed"
    first = lists[0]
    blocked = first.person == "blocklisted"
    now = utcnow()
    person_upsert, membership_upsert = _UPSERTS[conn.dialect.name]
    subscriber_id = await conn.scalar(
        person_upsert,
        {"email": address, "email_key": key, "name": name, "attributes": attributes,
         "status": "active", "created_at": now, "updated_at": now},
    )  # fmt: skip
    known = first.subscriber_id is not None
    person = {"id": subscriber_id, "email": first.email if known else address,
              "name": first.person_name if known else name}  # fmt: skip
    await emit(conn, "subscriber.created", person, when=not known)
    to_confirm: list[str] = []
    writes: list[dict[str, Any]] = []
    joined: list[tuple[int, int, datetime]] = []  # confirmed now: welcome sequences start
    moves: memberships.Moves = []  # announced to webhooks
    for m in lists:
        if blocked and m.membership is None:
            continue  # no new memberships for a blocklisted address; the old ones rewritten
        asked = "pending" if m.double_opt_in or first.suppressed else "confirmed"
        moved = None if blocked else memberships.next_status(m.membership, asked, actor="public")
        status = moved or m.membership or asked
        if moved == "confirmed":
            joined.append((subscriber_id, m.id, now))
            moves.append((moved, m.slug))
        if status == "pending" and not blocked:
            to_confirm.append(m.name)  # again if she lost the first link
        writes.append({"subscriber_id": subscriber_id, "list_id": m.id, "created_at": now,
                       "confirmed_at": None, "unsubscribed_at": None,
                       **memberships.stamps(status, now)})  # fmt: skip
    if writes:
        await conn.execute(membership_upsert, writes)
        await triggers.enrol(conn, joined)
        await membership_moved(conn, person, moves)
    languages = [m.language for m in lists]
    if not to_confirm:
        return SignUp(status=answer, languages=languages)
    return SignUp(answer, subscriber_id, person["email"], person["name"], to_confirm, languages)
