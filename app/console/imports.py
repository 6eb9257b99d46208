"""Console import: a CSV into a list, with live progress, then the errors by line.

Two ways in, one import (importer.import_csv, as the API and `tidings import` use):
- without JavaScript, a multipart form post; the file is spooled by the form parser and
  read back in chunks, and the answer is the result page;
- with import.js, the file itself is the body of one request, which the importer reads
  as it arrives. The browser's upload progress is then the import's progress (the
  server only takes more bytes as it parses them), with no job state kept anywhere, so
  it works the same behind several server processes; the answer is the result as JSON.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from app.accounts import audit
from app.console.web import ConsoleUser, page, require_role
from app.errors import NotFound, invalid
from app.subscribers import service
from app.subscribers.importer import ImportFailed, ImportResult, import_csv

router = APIRouter(prefix="/admin", tags=["console"])

CHUNK = 64 * 1024


async def _lists(request: Request) -> list[Any]:
    async with request.app.state.sessionmaker() as session:
        return await service.browse_lists(session=session, after=0, limit=1000)


async def _form(
    request: Request, *, slug: str = "", error: str = "", error_field: str = "file",
    status_code: int = 200,
) -> Response:  # fmt: skip
    response = page(request, "console/import_form.html", lists=await _lists(request),
                    slug=slug, error=error, error_field=error_field)  # fmt: skip
    response.status_code = status_code
    return response


async def _list_id(request: Request, slug: str) -> int | None:
    # A short read of its own: the import writes through its own batch transactions, so
    # no request session stays open (and holds a connection) while the file streams in.
    if not slug:
        return None
    async with request.app.state.sessionmaker() as session:
        try:
            return (await service.get_list(session=session, slug=slug)).id
        except NotFound:
            return None


async def _run(
    request: Request, user: Any, slug: str, list_id: int, chunks: AsyncIterator[bytes]
) -> ImportResult:
    result = await import_csv(
        sessionmaker=request.app.state.sessionmaker,
        list_id=list_id,
        chunks=chunks,
        check_deliverability=request.app.state.settings.check_deliverability,
    )
    # The import wrote through its own batch transactions, which the console's watch on
    # the request session cannot see: its audit entry is written here, after the last
    # batch, with the counts (never an address: the log outlives an erasure).
    detail = (
        f"created={result.created}; updated={result.updated}; skipped={result.skipped}; "
        f"errors={len(result.errors) + result.errors_omitted}"
    )
    async with request.app.state.sessionmaker() as session, session.begin():
        await audit.record(session=session, actor=user.email, action="import.create",
                           target=f"list {slug}", detail=detail)  # fmt: skip
    return result


async def _file_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


@router.get("/imports")
async def import_page(request: Request, user: ConsoleUser) -> Response:
    """The import form: a list and a CSV file."""
    return await _form(request, slug=request.query_params.get("list", ""))


@router.post("/imports")
async def import_upload(request: Request, user: ConsoleUser) -> Response:
    """Import the uploaded file (the form without JavaScript) and show the result."""
    require_role(user, "editor")
    form = await request.form()
    slug = str(form.get("list") or "")
    upload = form.get("file")
    list_id = await _list_id(request, slug)
    if list_id is None:
        return await _form(request, slug=slug, error="Choose a list that exists.",
                           error_field="list", status_code=422)  # fmt: skip
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _form(request, slug=slug, error="Choose a CSV file to import.",
                           status_code=422)  # fmt: skip
    try:
        result = await _run(request, user, slug, list_id, _file_chunks(upload))
    except ImportFailed as exc:
        return await _form(request, slug=slug, error=str(exc), status_code=422)
    response = page(request, "console/import_result.html", result=result.as_dict(), slug=slug,
                    filename=upload.filename)  # fmt: skip
    return response


@router.post("/imports/stream")
async def import_stream(request: Request, user: ConsoleUser) -> Response:
    """Import the request body itself (import.js sends the file), answering the result as JSON."""
    require_role(user, "editor")
    slug = request.query_params.get("list", "")
    list_id = await _list_id(request, slug)
    if list_id is None:
        raise invalid("list", "Choose a list that exists.", where="query")
    try:
        result = await _run(request, user, slug, list_id, request.stream())
    except ImportFailed as exc:
        raise invalid("file", str(exc)) from None
    return JSONResponse({**result.as_dict(), "list": slug})
