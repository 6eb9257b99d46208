"""The public sign-up: the hot path of the API, so Core statements and few round trips.

One SELECT resolves the lists (with their language, which the confirmation speaks), the
person (if known), their memberships of those lists and whether the address is
suppressed (a UNION ALL: one round trip); then one upsert of the person and one of the
memberships. Known and unknown addresses run the same statements and write alike (an
upsert that meets a known address still writes its row), so the time of the answer does
not tell a stranger whether an address is on file. The caller commits: the route one
sign-up a transaction, the fast path (signup_fast.py) several concurrent ones in one
(group commit, signup_batch.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    String,
    any_,
    bindparam,
    case,
    cast,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import utcnow
from app.errors import Invalid
from app.issues import triggers
from app.models import MailingList, Subscriber, Subscription, Suppression
from app.subscribers import memberships
from app.subscribers.addresses import suppression_hash
from app.subscribers.service import normalize_or_invalid
from app.webhooks.events import emit_each, membership_moved


def _lookup(postgres: bool) -> Any:
    """One statement for the two questions of a batch, asked whoever the people are: the
    lists asked for, each with every known person of the batch (or none) and her
    membership of it; and, in rows of their own (`hash` set, the rest NULL), which of the
    addresses are suppressed. One round trip, not two. On PostgreSQL the lists of values
    are arrays (`= ANY`), so one statement text, prepared once, serves every batch size.
    """

    def among(column: Any, name: str) -> Any:
        if postgres:
            return column == any_(bindparam(name, type_=postgresql.ARRAY(String)))
        return column.in_(bindparam(name, expanding=True))

    lists = (
        select(
            MailingList.id,
            MailingList.slug,
            MailingList.name,
            MailingList.double_opt_in,
            MailingList.public,
            MailingList.language,
            Subscriber.id.label("subscriber_id"),
            Subscriber.email_key.label("key"),
            Subscriber.email,
            Subscriber.name.label("person_name"),
            Subscriber.status.label("person"),
            Subscription.status.label("membership"),
            cast(null(), String).label("hash"),
        )
        .select_from(MailingList)
        .outerjoin(Subscriber, among(Subscriber.email_key, "keys"))
        .outerjoin(
            Subscription,
            (Subscription.subscriber_id == Subscriber.id)
            & (Subscription.list_id == MailingList.id),
        )
        .where(among(MailingList.slug, "slugs"))
    )
    suppressed = select(*[null()] * 12, Suppression.email_hash).where(
        among(Suppression.email_hash, "hashes")
    )
    return union_all(lists, suppressed)


def _person_upsert(dialect: Any) -> Any:
    """Insert the person, or touch the known row (a write that changes nothing of hers).

    Each row comes back with what tells whether this statement inserted it. On PostgreSQL
    a row the upsert only updated has its xmax set (to this transaction), a fresh one has
    none. On SQLite it is the row's created_at, which is this batch's `now` only on a row it
    inserted (the upsert leaves a known row's alone). A person the lookup did not find but
    the upsert did not insert was written meanwhile by another transaction, which
    committed while this one waited for her row: two sign-ups of a new address at once, in
    two processes (the lookup runs before this transaction holds any lock).
    """
    stmt = dialect.insert(Subscriber)
    inserted = literal_column("xmax = 0") if dialect is postgresql else Subscriber.created_at
    return stmt.on_conflict_do_update(
        index_elements=[Subscriber.email_key], set_={"email_key": stmt.excluded.email_key}
    ).returning(Subscriber.id, Subscriber.email_key, inserted)


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
    ).returning(Subscription.list_id)  # RETURNING: a batch's rows go as one statement


# Built once per backend: constructing them per request cost more than running them.
_UPSERTS = {
    name: (_person_upsert(dialect), _membership_upsert(dialect))
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_LOOKUPS = {"postgresql": _lookup(True), "sqlite": _lookup(False)}


@dataclass
class SignUp:
    """The outcome of a public sign-up: the answer, and who needs a confirmation email."""

    status: str
    subscriber_id: int | None = None  # set when a confirmation email is to go out
    email: str = ""
    name: str | None = None
    list_names: list[str] = field(default_factory=list)
    languages: list[str | None] = field(default_factory=list)  # of the lists, for language_of


@dataclass(frozen=True)
class Ask:
    """One sign-up as asked, its address validated (`refused` says why not)."""

    address: str
    key: str
    refused: Invalid | None
    name: str | None
    slugs: list[str]
    attributes: dict[str, Any]


def ask(
    email: str, name: str | None, slugs: list[str], attributes: dict[str, Any], *,
    check_deliverability: bool,
) -> Ask:  # fmt: skip
    try:
        address, key = normalize_or_invalid(email, check_deliverability=check_deliverability)
    except Invalid as exc:
        return Ask("", "", exc, name, list(dict.fromkeys(slugs)), attributes)
    return Ask(address, key, None, name, list(dict.fromkeys(slugs)), attributes)


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
    An unknown list is reported before a bad address. The caller commits.
    """
    one = ask(email, name, slugs, attributes, check_deliverability=check_deliverability)
    (outcome,) = await subscribe_many(conn, [one])
    if isinstance(outcome, Invalid):
        raise outcome
    return outcome


async def subscribe_many(conn: AsyncConnection, asks: list[Ask]) -> list[SignUp | Invalid]:
    """public_subscribe for several people at once, set-based: each one's outcome, in order.

    One lookup, one upsert of the people and one of the memberships for the lot. A refused
    sign-up (Invalid) writes nothing and the others go on. The keys must be distinct (a
    second sign-up of an address waits for the next batch: signup_batch.py).
    """
    keys = [a.key for a in asks if a.refused is None]
    slugs = sorted({s for a in asks for s in a.slugs})
    lists: dict[str, Any] = {}
    people: dict[str, Any] = {}
    held: dict[tuple[str, int], str] = {}
    suppressed: set[str] = set()

    async def look_up(keys: list[str]) -> None:
        hashes = {suppression_hash(k): k for k in keys}
        params = {"keys": keys, "slugs": slugs, "hashes": list(hashes)}
        for r in await conn.execute(_LOOKUPS[conn.dialect.name], params):
            if r.hash is not None:
                suppressed.add(hashes[r.hash])
            elif r.public:
                lists.setdefault(r.slug, r)
            if r.subscriber_id is not None:
                people.setdefault(r.key, r)
                if r.membership is not None:
                    held[r.key, r.id] = r.membership

    await look_up(keys)
    outcomes: list[SignUp | Invalid] = []
    accepted: list[tuple[int, Ask]] = []
    for a in asks:
        missing = [s for s in a.slugs if s not in lists]
        if missing:
            names = ", ".join(repr(s) for s in missing)
            outcomes.append(Invalid(f"no public list with slug {names}", loc=("body", "lists")))
        elif a.refused is not None:
            outcomes.append(a.refused)
        else:
            accepted.append((len(outcomes), a))
            outcomes.append(SignUp(status=""))  # filled below
    if not accepted:
        return outcomes
    now = utcnow()
    person_upsert, membership_upsert = _UPSERTS[conn.dialect.name]
    rows = [{"email": a.address, "email_key": a.key, "name": a.name, "attributes": a.attributes,
             "status": "active", "created_at": now, "updated_at": now}
            for _, a in sorted(accepted, key=lambda x: x[1].key)]  # one lock order  # fmt: skip
    ids: dict[str, int] = {}
    raced: list[str] = []
    for sid, key, inserted in await conn.execute(person_upsert, rows):
        ids[key] = sid
        fresh = inserted == now if isinstance(inserted, datetime) else bool(inserted)
        if not fresh and key not in people:
            raced.append(key)
    if raced:  # written by another transaction since our lookup: see what it wrote
        await look_up(raced)
    created: list[dict[str, Any]] = []
    writes: list[dict[str, Any]] = []
    joined: list[tuple[int, int, datetime]] = []  # confirmed now: welcome sequences start
    moved: list[tuple[dict[str, Any], memberships.Moves]] = []  # announced to webhooks
    for i, a in accepted:
        known = people.get(a.key)
        sid = ids[a.key]
        person: dict[str, Any] = {"id": sid, "email": known.email if known else a.address,
                  "name": known.person_name if known else a.name}  # fmt: skip
        if known is None:
            created.append(person)
        blocked = known is not None and known.person == "blocklisted"
        chosen = [lists[s] for s in a.slugs]
        to_confirm: list[str] = []
        moves: memberships.Moves = []
        for m in chosen:
            was = held.get((a.key, m.id))
            if blocked and was is None:
                continue  # no new memberships for a blocklisted address; the old ones rewritten
            asked = "pending" if m.double_opt_in or a.key in suppressed else "confirmed"
            move = None if blocked else memberships.next_status(was, asked, actor="public")
            status = move or was or asked
            if move == "confirmed":
                joined.append((sid, m.id, now))
                moves.append((move, m.slug))
            if status == "pending" and not blocked:
                to_confirm.append(m.name)  # again if she lost the first link
            writes.append({"subscriber_id": sid, "list_id": m.id, "created_at": now,
                           "confirmed_at": None, "unsubscribed_at": None,
                           **memberships.stamps(status, now)})  # fmt: skip
        moved.append((person, moves))
        answer = "pending" if any(m.double_opt_in for m in chosen) else "confirmed"
        languages = [m.language for m in chosen]
        outcomes[i] = (SignUp(answer, sid, person["email"], person["name"], to_confirm, languages)
                       if to_confirm else SignUp(status=answer, languages=languages))  # fmt: skip
    await emit_each(conn, "subscriber.created", created)
    if writes:
        writes.sort(key=lambda w: (w["subscriber_id"], w["list_id"]))
        await conn.execute(membership_upsert, writes)
        await triggers.enrol(conn, joined)
        for person, moves in moved:
            if moves:
                await membership_moved(conn, person, moves)
    return outcomes
