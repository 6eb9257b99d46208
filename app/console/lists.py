"""Console pages of lists: the lists with their counts, create, edit, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app import i18n
from app.console.audience import can_edit, field_errors, read_form
from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import SessionDep
from app.errors import Conflict
from app.subscribers import service
from app.subscribers.list_issues import issues_targeting
from app.subscribers.schemas import ListCreate, ListUpdate

router = APIRouter(prefix="/admin", tags=["console"])

LABELS = {"slug": "Slug", "name": "Name", "description": "Description", "language": "Language"}
MAX_LISTS_SHOWN = 1000


def _list_values(form: dict[str, str]) -> dict[str, Any]:
    return {
        "slug": form.get("slug", "").strip(),
        "name": form.get("name", ""),
        "description": form.get("description", "").replace("\r\n", "\n"),
        "double_opt_in": form.get("double_opt_in") == "on",
        "public": form.get("public") == "on",
        "language": form.get("language") or None,  # "": the installation's language
    }


def _languages(request: Request) -> dict[str, Any]:
    """What the language select offers, and the installation's default it names."""
    default = i18n.default_language(request.app.state.settings)
    return {"languages": i18n.names(), "default_language": default}


async def _index(
    request: Request, session: Any, user: Any, *, values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    lists = await service.browse_lists(session=session, after=0, limit=MAX_LISTS_SHOWN)
    counts = await service.list_counts(session=session, list_ids=[m.id for m in lists])
    response = page(
        request, "console/list_index.html", lists=lists, counts=counts, can_edit=can_edit(user),
        values=values or {"double_opt_in": True, "public": True}, errors=errors or {},
        **_languages(request),
    )  # fmt: skip
    response.status_code = status_code
    return response


@router.get("/lists")
async def lists_page(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Every list with its confirmed, pending and unsubscribed members, and a create form."""
    return await _index(request, session, user)


@router.post("/lists")
async def create_list(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Create a list from the form; the page again with the errors when it is refused."""
    require_role(user, "editor")
    form, _ = await read_form(request)
    values = _list_values(form)
    try:
        data = ListCreate.model_validate(values)
        mailing_list = await service.create_list(session=session, data=data)
    except ValidationError as exc:
        errors = field_errors(exc, LABELS)
        return await _index(request, session, user, values=values, errors=errors, status_code=422)
    except Conflict as exc:
        errors = {"slug": exc.detail}
        return await _index(request, session, user, values=values, errors=errors, status_code=409)
    flash(request, f"List {mailing_list.name!r} created.", "success")
    return redirect(f"/admin/lists/{mailing_list.slug}")


async def _edit(
    request: Request, session: Any, user: Any, slug: str, *, values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    mailing_list = await service.get_list(session=session, slug=slug)
    counts = (await service.list_counts(session=session, list_ids=[mailing_list.id]))[
        mailing_list.id
    ]
    issues = await issues_targeting(session=session, list_id=mailing_list.id)
    blocking = [i for i in issues if i.blocks_delete]
    errors = dict(errors or {})
    delete_error = errors.pop("delete", None)
    response = page(
        request, "console/list_edit.html", mailing_list=mailing_list, counts=counts,
        issues=issues, blocking=blocking, can_edit=can_edit(user), errors=errors,
        delete_error=delete_error,
        values=values or _list_values_of(mailing_list), **_languages(request),
    )  # fmt: skip
    response.status_code = status_code
    return response


def _list_values_of(mailing_list: Any) -> dict[str, Any]:
    return {
        "name": mailing_list.name,
        "description": mailing_list.description,
        "double_opt_in": mailing_list.double_opt_in,
        "public": mailing_list.public,
        "language": mailing_list.language,
    }


@router.get("/lists/{slug}")
async def list_page(
    slug: str, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """One list: its settings, counts, the issues that target it, and delete."""
    return await _edit(request, session, user, slug)


@router.post("/lists/{slug}")
async def update_list(
    slug: str, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """Save a list's name, description, opt-in mode, visibility and language."""
    require_role(user, "editor")
    form, _ = await read_form(request)
    values = _list_values(form)
    values.pop("slug")
    try:
        data = ListUpdate.model_validate(values)
    except ValidationError as exc:
        errors = field_errors(exc, LABELS)
        return await _edit(
            request, session, user, slug, values=values, errors=errors, status_code=422
        )
    await service.update_list(session=session, slug=slug, data=data)
    flash(request, "List saved.", "success")
    return redirect(f"/admin/lists/{slug}")


@router.post("/lists/{slug}/delete")
async def delete_list(
    slug: str, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """Delete a list and its memberships; refused while an issue that may send targets it."""
    require_role(user, "editor")
    try:
        await service.delete_list(session=session, slug=slug)
    except Conflict as exc:
        errors = {"delete": exc.detail}
        return await _edit(request, session, user, slug, errors=errors, status_code=409)
    flash(request, f"List {slug!r} deleted; its subscribers stay.", "success")
    return redirect("/admin/lists")
