"""The one handler set that answers the product's refusals (app/errors.py) over HTTP.

`install(app)` (called by `create_app`) turns them into FastAPI's error shape:
`{"detail": "..."}`, and for 422 the list of located errors that FastAPI's own validation
answers (`[{"loc", "msg", "type"}]`), so a client parses one shape whichever layer
refused. A failed commit is answered here too: the request's write did not happen, so the
client must hear an error, never a 2xx.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from app.db import database_away
from app.errors import DomainError
from app.web.redaction import redact

log = logging.getLogger("tidings.errors")


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(
        "/api/"
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return JSONResponse({"detail": exc.body()}, status_code=exc.status_code, headers=exc.headers)


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # A constraint checked at flush or commit: the write is not there, and another
    # request's write is what it met. 409 lets the client read again and decide.
    log.info("write refused by a constraint on %s %s", request.method, redact(request.url.path))
    return JSONResponse(
        {"detail": "the write conflicts with another change; nothing was saved"}, status_code=409
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A driver error: the database away is 503; a value it cannot hold is the sender's 422."""
    assert isinstance(exc, DBAPIError)
    if isinstance(exc, DataError):
        # A value past the column's range or type (an id past int32, a NUL in text):
        # bad input that slipped past validation, not an outage to retry.
        log.info("value refused by the database on %s %s", request.method, redact(request.url.path))
        msg = "a value is out of the range the database can store"
        return JSONResponse(
            {"detail": [{"loc": ["body"], "msg": msg, "type": "value_error"}]}, status_code=422
        )
    if database_away(exc):
        return await _database_away(request, exc)
    raise exc  # a bug (bad SQL): the server error it is, logged with its traceback


async def _database_away(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database error on %s %s: %s", request.method, redact(request.url.path), type(exc))
    return JSONResponse(
        {"detail": "the database is not answering; nothing was saved, try again"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _too_deep(request: Request, exc: Exception) -> JSONResponse:
    # Python's JSON parser (and any walk of what it built) stops at its recursion limit:
    # input nested thousands deep is the sender's error, on every endpoint that reads JSON.
    log.info("input nested too deeply on %s %s", request.method, redact(request.url.path))
    detail = [{"loc": ["body"], "msg": "the input is nested too deeply", "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=422)


def install(app: FastAPI) -> None:
    """Register the one set of handlers on the app."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(RecursionError, _too_deep)
