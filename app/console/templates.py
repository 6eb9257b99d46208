"""Console pages of layouts: those in email_templates/ and stored ones, previews, and adding
an MJML layout (owners), validated and compiled before it is saved.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from app.console.issues import FRAME_HEADERS
from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import SessionDep
from app.errors import Conflict, Invalid
from app.issues import stored_layouts
from app.issues.layout import TEMPLATES_DIR

router = APIRouter(prefix="/admin", tags=["console"])
frames = APIRouter(tags=["console"])
LayoutName = Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _starter() -> str:
    """The newsletter layout, as a starting point for a new one."""
    path = TEMPLATES_DIR / "newsletter" / "layout.mjml"
    return path.read_text() if path.is_file() else ""


async def _index(
    request: Request, session: Any, user: Any, *, values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    await stored_layouts.refresh(session=session, force=True)
    disk = stored_layouts.folder_names()
    stored = [n for n in stored_layouts.names() if n not in disk]
    return page(request, "console/layout_index.html", disk=disk, stored=stored,
                values=values or {"mjml": _starter(), "text": "", "name": ""},
                errors=errors or {}, is_owner=user.role == "owner",
                max_bytes=stored_layouts.MAX_BYTES, status_code=status_code)  # fmt: skip


@router.get("/layouts")
async def layouts_page(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Every layout with a preview; owners add MJML layouts here."""
    return await _index(request, session, user)


@router.post("/layouts")
async def add_layout(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Add an MJML layout: refused with the reason unless it compiles."""
    require_role(user, "owner")
    form = await request.form()
    values = {k: str(form.get(k, "")).replace("\r\n", "\n") for k in ("name", "mjml", "text")}
    try:
        await stored_layouts.add(session=session, **values)
    except (Invalid, Conflict) as exc:
        field = str(exc.loc[-1]) if exc.loc else "name"
        return await _index(request, session, user, values=values, errors={field: exc.detail},
                            status_code=exc.status_code)  # fmt: skip
    flash(request, f"Layout {values['name']} added: issues can use it now.", "success")
    return redirect("/admin/layouts")


@frames.get("/console-preview/layouts/{name}", include_in_schema=False)
async def layout_preview(request: Request, session: SessionDep, user: ConsoleUser,
                         name: str = LayoutName) -> Response:  # fmt: skip
    """A sample issue in this layout, for a sandboxed iframe."""
    await stored_layouts.refresh(session=session)
    if name not in stored_layouts.names():
        return Response("no such layout", status_code=404, media_type="text/plain")
    html = await asyncio.to_thread(stored_layouts.preview, name)
    return Response(html, media_type="text/html", headers=FRAME_HEADERS)
