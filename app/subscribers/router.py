"""The lists and subscribers API: admin CRUD, import, export, and the public sign-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.deps import AdminDep, MailerDep, SessionDep, SettingsDep
from app.pagination import Cursor, Limit, decode_cursor
from app.security import rate_limited
from app.subscribers import service
from app.subscribers.addresses import InvalidAddress, normalize
from app.subscribers.emails import confirmation_envelope, send_confirmation
from app.subscribers.importer import ImportFailed, import_csv
from app.subscribers.pages import render_form
from app.subscribers.schemas import (
    ImportOut,
    ListCreate,
    ListOut,
    ListPage,
    ListUpdate,
    SubscribeIn,
    SubscribeOut,
    SubscriberCreate,
    SubscriberOut,
    SubscriberPage,
    SubscriberUpdate,
)
from app.subscribers.signup import public_subscribe


async def service_errors() -> AsyncIterator[None]:
    """Turn the services' refusals into FastAPI's error shape."""
    try:
        yield
    except service.ServiceError as exc:
        if exc.loc:
            detail: Any = [{"loc": list(exc.loc), "msg": exc.detail, "type": "value_error"}]
        else:
            detail = exc.detail
        raise HTTPException(exc.status_code, detail) from None


router = APIRouter()
admin = APIRouter(prefix="/api/v1", dependencies=[AdminDep, Depends(service_errors)])
public = APIRouter(prefix="/api/v1", tags=["sign-up"], dependencies=[Depends(service_errors)])

SubscriberId = Annotated[int, Path(ge=1, le=2**63 - 1)]
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
    items, next_cursor = service.page(rows, limit)
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
        names = sorted(s.mailing_list.name for s in subscriber.subscriptions)
        await session.commit()
        _confirm_later(settings, mailer, background, subscriber_id=subscriber.id,
                       email=subscriber.email, name=subscriber.name, list_names=names)  # fmt: skip
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
    items, next_cursor = service.page(rows, limit)
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
    async with maker() as session:
        # A short read of its own: the import writes through its own batch transactions.
        list_id = await service.list_id(session=session, slug=list)
    if list_id is None:
        raise service.Invalid(f"no list with slug {list!r}", loc=("query", "list"))
    try:
        result = await import_csv(
            sessionmaker=maker,
            list_id=list_id,
            chunks=request.stream(),
            check_deliverability=settings.check_deliverability,
        )
    except ImportFailed as exc:
        raise service.Invalid(str(exc), loc=("body",)) from None
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


# --- public sign-up --------------------------------------------------------------------

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_SUBSCRIBE_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": SubscribeIn.model_json_schema()},
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["email", "list"],
                "properties": {
                    "email": {"type": "string"},
                    "name": {"type": "string"},
                    "list": {"type": "array", "items": {"type": "string"}},
                },
            }
        },
    },
}


def _confirm_later(
    settings: Any, mailer: Any, background: BackgroundTasks, *, subscriber_id: int, email: str,
    name: str, list_names: list[str],
) -> None:  # fmt: skip
    """Build and send the confirmation after the answer: neither holds the request.

    The caller has committed, so the link never names a row that a rollback could undo.
    """

    async def build_and_send() -> None:
        envelope = confirmation_envelope(
            settings, subscriber_id=subscriber_id, email=email, name=name, list_names=list_names
        )
        await send_confirmation(mailer, envelope)

    background.add_task(build_and_send)


def _valid_address(value: object) -> bool:
    try:
        normalize(str(value))
    except InvalidAddress:
        return False
    return True


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def _read_subscribe_body(request: Request, *, is_form: bool) -> Any:
    if is_form:
        form = await request.form()
        lists = form.getlist("list") + form.getlist("lists")
        return {
            "email": form.get("email", ""),
            "name": form.get("name", ""),
            "lists": [v for v in lists if isinstance(v, str)],
        }
    try:
        return await request.json()
    except ValueError:
        raise RequestValidationError(
            [{"loc": ["body"], "msg": "the body is not valid JSON", "type": "json_invalid"}]
        ) from None


_FIELD_OF = {"email": "email", "name": "name", "lists": "list", "attributes": "email"}
_MESSAGES = {
    "email": "Enter a valid email address, like name@example.com",
    "name": "The name is too long or has characters that are not allowed",
    "list": "Choose at least one list",
}


_subscribe_limit = rate_limited("subscribe")


async def _subscribe_limited(request: Request) -> None:
    """The sign-up's rate limit, awaited inline: FastAPI runs a plain `def` dependency in a
    worker thread, a thread hop per request that cost more than the limiter itself."""
    _subscribe_limit(request)


@public.post(
    "/subscribe",
    status_code=202,
    response_model=SubscribeOut,
    dependencies=[Depends(_subscribe_limited)],
    openapi_extra={"requestBody": _SUBSCRIBE_BODY},
    responses={303: {"description": "a browser's form post: to the thank-you page"}},
)
async def subscribe(request: Request, background: BackgroundTasks) -> Response:
    """Public sign-up (JSON or form); the same answer whether the address was known or not."""
    # app.state directly: SettingsDep and MailerDep are plain functions, each a thread hop.
    settings, mailer = request.app.state.settings, request.app.state.mailer
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_form = content_type in _FORM_TYPES
    html = is_form and _wants_html(request)
    raw = await _read_subscribe_body(request, is_form=is_form)
    try:
        data = SubscribeIn.model_validate(raw)
        # A bare connection, not the ORM session: the sign-up is Core statements only.
        async with request.app.state.engine.begin() as conn:
            signup = await public_subscribe(
                conn=conn,
                email=data.email,
                name=data.name,
                slugs=data.lists,
                attributes=data.attributes,
                check_deliverability=settings.check_deliverability,
            )
    except ValidationError as exc:
        if not html:
            located = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(located) from None
        fields = {_FIELD_OF.get(str(e["loc"][0]), "email") for e in exc.errors() if e["loc"]}
        if "email" not in fields and not _valid_address(raw.get("email")):
            fields.add("email")  # show every mistake at once, not one per attempt
        errors: dict[str, str] = {f: _MESSAGES[f] for f in ("email", "name", "list") if f in fields}
        return await _form_again(request, raw, errors)
    except service.Invalid as exc:
        if not html:
            raise
        field = _FIELD_OF.get(exc.loc[-1] if exc.loc else "email", "email")
        return await _form_again(request, raw, {field: exc.detail})
    if signup.subscriber_id is not None:
        _confirm_later(
            settings,
            mailer,
            background,
            subscriber_id=signup.subscriber_id,
            email=signup.email,
            name=signup.name,
            list_names=signup.list_names,
        )
    if html:
        return RedirectResponse(f"/subscribe/thanks?status={signup.status}", status_code=303)
    return JSONResponse({"status": signup.status}, status_code=202)


async def _form_again(request: Request, raw: Any, errors: dict[str, str]) -> Response:
    values = {"email": str(raw.get("email", "")), "name": str(raw.get("name", "")),
              "lists": raw.get("lists", [])}  # fmt: skip
    async with request.app.state.sessionmaker() as session:
        return await render_form(request, session, values=values, errors=errors, status_code=422)


router.include_router(admin)
router.include_router(public)
