"""The lists and subscribers admin API: CRUD, import, export (the public sign-up is public.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request
from fastapi.responses import Response

from app.db import transaction
from app.deps import AdminDep, MailerDep, SessionDep, SettingsDep
from app.errors import Invalid
from app.pagination import BigRowId, Cursor, Limit, decode_cursor, page
from app.subscribers import public, service
from app.subscribers.emails import subscriptions_language
from app.subscribers.importer import ImportFailed, import_csv
from app.subscribers.schemas import (
    ImportOut,
    ListCreate,
    ListOut,
    ListPage,
    ListUpdate,
    SubscriberCreate,
    SubscriberOut,
    SubscriberPage,
    SubscriberUpdate,
)

router = APIRouter()
admin = APIRouter(prefix="/api/v1", dependencies=[AdminDep])

SubscriberId = BigRowId
SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SlugPath = Annotated[str, Path(pattern=SLUG, description="the list's slug")]


# --- lists -----------------------------------------------------------------------------


async def _lists_out(session: Any, lists: list[Any]) -> list[dict[str, Any]]:
    counts = await service.list_counts(session=session, list_ids=[m.id for m in lists])
    return [
        {
            **{c: getattr(m, c) for c in ListOut.model_fields if c != "counts"},
            "counts": counts[m.id],
        }
        for m in lists
    ]


@admin.post("/lists", status_code=201, response_model=ListOut, tags=["lists"])
async def create_list(data: ListCreate, session: SessionDep) -> dict[str, Any]:
    """Create a list; 409 if the slug exists."""
    mailing_list = await service.create_list(session=session, data=data)
    return (await _lists_out(session, [mailing_list]))[0]


@admin.get("/lists", response_model=ListPage, tags=["lists"])
async def browse_lists(session: SessionDep, limit: Limit = 100, cursor: Cursor = None) -> Any:
    """The lists, with their counts of confirmed, pending and unsubscribed members."""
    after = decode_cursor(cursor) or 0
    rows = await service.browse_lists(session=session, after=after, limit=limit + 1)
    items, next_cursor = page(rows, limit)
    return {"items": await _lists_out(session, items), "next_cursor": next_cursor}


@admin.get("/lists/{slug}", response_model=ListOut, tags=["lists"])
async def get_list(slug: SlugPath, session: SessionDep) -> dict[str, Any]:
    """One list with its counts."""
    mailing_list = await service.get_list(session=session, slug=slug)
    return (await _lists_out(session, [mailing_list]))[0]


@admin.patch("/lists/{slug}", response_model=ListOut, tags=["lists"])
async def update_list(slug: SlugPath, data: ListUpdate, session: SessionDep) -> dict[str, Any]:
    """Rename a list, or change its description, opt-in mode or visibility on the form."""
    mailing_list = await service.update_list(session=session, slug=slug, data=data)
    return (await _lists_out(session, [mailing_list]))[0]


@admin.delete("/lists/{slug}", status_code=204, tags=["lists"])
async def delete_list(slug: SlugPath, session: SessionDep) -> Response:
    """Delete a list and its memberships (the subscribers stay)."""
    await service.delete_list(session=session, slug=slug)
    return Response(status_code=204)


# --- subscribers -----------------------------------------------------------------------


@admin.post("/subscribers", status_code=201, response_model=SubscriberOut, tags=["subscribers"])
async def create_subscriber(
    data: SubscriberCreate,
    session: SessionDep,
    settings: SettingsDep,
    mailer: MailerDep,
    background: BackgroundTasks,
) -> dict[str, Any]:
    """Add a subscriber, confirmed unless `subscription_status` is pending (then emailed)."""
    subscriber = await service.create_subscriber(
        session=session, data=data, check_deliverability=settings.check_deliverability
    )
    if data.subscription_status == "pending" and subscriber.subscriptions:
        # Background tasks run after the answer, and the request's session commits before
        # it: the link never names a row that is not there.
        names = sorted(s.mailing_list.name for s in subscriber.subscriptions)
        public.confirm_later(
            settings,
            mailer,
            background,
            subscriber_id=subscriber.id,
            email=subscriber.email,
            name=subscriber.name,
            list_names=names,
            language=subscriptions_language(settings, subscriber),
        )
    return service.subscriber_out(subscriber)


@admin.get("/subscribers", response_model=SubscriberPage, tags=["subscribers"])
async def search_subscribers(
    session: SessionDep,
    limit: Limit = 100,
    cursor: Cursor = None,
    q: Annotated[
        str | None,
        Query(max_length=320, pattern=r"^[^\x00-\x1f\x7f]*$", description="in email or name"),
    ] = None,
    list: Annotated[str | None, Query(pattern=SLUG, description="a list's slug")] = None,  # noqa: A002
    status: Annotated[
        Literal["active", "blocklisted", "pending", "confirmed", "unsubscribed"] | None,
        Query(description="the membership's with `list`, else the person's"),
    ] = None,
) -> dict[str, Any]:
    """Subscribers by id. `status` filters the membership (pending, confirmed, unsubscribed)
    when `list` is given, else the person (active, blocklisted)."""
    rows = await service.search_subscribers(
        session=session,
        after=decode_cursor(cursor) or 0,
        limit=limit + 1,
        q=q,
        list_slug=list,
        status=status,
    )
    items, next_cursor = page(rows, limit)
    return {"items": [service.subscriber_out(s) for s in items], "next_cursor": next_cursor}


@admin.post("/subscribers/import", response_model=ImportOut, tags=["subscribers"],
            openapi_extra={"requestBody": {"required": True, "content": {
                "text/csv": {"schema": {"type": "string"}}}}})  # fmt: skip
async def import_subscribers(
    request: Request,
    settings: SettingsDep,
    list: Annotated[str, Query(pattern=SLUG, description="slug of the list to join")],  # noqa: A002
) -> dict[str, Any]:
    """Import a CSV (header row; `email` required, `name`, other columns become attributes)."""
    maker = request.app.state.sessionmaker
    # A short read of its own: the import writes through its own batch transactions.
    async with transaction(maker) as session:
        found = await service.lists_by_slug(session=session, slugs=[list], loc=("query", "list"))
    list_id = found[0].id
    try:
        result = await import_csv(
            sessionmaker=maker,
            list_id=list_id,
            chunks=request.stream(),
            check_deliverability=settings.check_deliverability,
        )
    except ImportFailed as exc:
        raise Invalid(str(exc), loc=("body",)) from None
    return result.as_dict()


@admin.get("/subscribers/{subscriber_id}", response_model=SubscriberOut, tags=["subscribers"])
async def get_subscriber(subscriber_id: SubscriberId, session: SessionDep) -> dict[str, Any]:
    """One subscriber."""
    subscriber = await service.get_subscriber(session=session, subscriber_id=subscriber_id)
    return service.subscriber_out(subscriber)


@admin.patch("/subscribers/{subscriber_id}", response_model=SubscriberOut, tags=["subscribers"])
async def update_subscriber(
    subscriber_id: SubscriberId, data: SubscriberUpdate, session: SessionDep
) -> dict[str, Any]:
    """Change name, attributes (replaced), status (blocklist by hand) or memberships."""
    subscriber = await service.update_subscriber(
        session=session, subscriber_id=subscriber_id, data=data
    )
    return service.subscriber_out(subscriber)


@admin.delete("/subscribers/{subscriber_id}", status_code=204, tags=["subscribers"])
async def erase_subscriber(subscriber_id: SubscriberId, session: SessionDep) -> Response:
    """Erase a subscriber (GDPR): only a hash of the address stays, on the suppression list."""
    await service.erase_subscriber(session=session, subscriber_id=subscriber_id)
    return Response(status_code=204)


@admin.get("/subscribers/{subscriber_id}/export", tags=["subscribers"])
async def export_subscriber(subscriber_id: SubscriberId, session: SessionDep) -> dict[str, Any]:
    """Every piece of data held on this person (GDPR access request)."""
    return await service.export_subscriber(session=session, subscriber_id=subscriber_id)


router.include_router(admin)
router.include_router(public.router)
