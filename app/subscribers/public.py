"""The public sign-up over HTTP: `POST /api/v1/subscribe` (JSON or a form) and the hosted
form's own `POST /subscribe`, which answers on its page (the address bar stays /subscribe).

Both write through signup.public_subscribe in one Core transaction that is committed
before the answer; the confirmation email is built and sent after it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from app import i18n
from app.config import Settings
from app.db import core_transaction, transaction
from app.delivery.transport import Mailer
from app.errors import Invalid
from app.i18n import N_
from app.security import rate_limited
from app.subscribers.emails import confirm
from app.subscribers.pages import render_form
from app.subscribers.schemas import SubscribeIn, SubscribeOut
from app.subscribers.signup import SignUp, public_subscribe

router = APIRouter()

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
# What a person reads next to the field, in plain words (never a library's message);
# translated by the form (pages.render_form) into the page's language.
_MESSAGES = {
    "email": N_("Enter a valid email address, like name@example.com"),
    "name": N_("The name is too long or has characters that are not allowed"),
    "list": N_("Choose at least one list"),
}
_FIELD_OF = {"email": "email", "name": "name", "lists": "list", "attributes": "email"}


def confirm_later(
    settings: Settings, mailer: Mailer, background: BackgroundTasks, *, subscriber_id: int,
    email: str, name: str | None, list_names: list[str], language: str | None = None,
) -> None:  # fmt: skip
    """Build and send the confirmation after the answer (emails.confirm): neither holds the
    request, and the request's write is committed by then."""
    background.add_task(
        confirm, settings, mailer, subscriber_id=subscriber_id, email=email, name=name,
        list_names=list_names, language=language,
    )  # fmt: skip


async def _read_body(request: Request, *, is_form: bool) -> Any:
    if is_form:
        form = await request.form()
        lists = form.getlist("list") + form.getlist("lists")
        return {
            "email": form.get("email", ""),
            "name": form.get("name", ""),
            "lists": [v for v in lists if isinstance(v, str)],
        }
    try:
        return await request.json()  # nested too deep: app/errors.py answers the RecursionError
    except ValueError:
        raise RequestValidationError(
            [{"loc": ["body"], "msg": "the body is not valid JSON", "type": "json_invalid"}]
        ) from None


async def _sign_up(request: Request, raw: Any, background: BackgroundTasks) -> tuple[SignUp, str]:
    """Validate, write and commit one sign-up; the confirmation goes out after the answer.

    Also the language of the lists signed up to, which the confirmation email speaks.
    """
    settings, mailer = request.app.state.settings, request.app.state.mailer
    data = SubscribeIn.model_validate(raw)
    async with core_transaction(request.app.state.engine) as conn:
        signup = await public_subscribe(
            conn=conn,
            email=data.email,
            name=data.name,
            slugs=data.lists,
            attributes=data.attributes,
            check_deliverability=settings.check_deliverability,
        )
    # The lists' language (read by the lookup), for the confirmation and the thank-you page.
    language = i18n.language_of(signup.languages, i18n.default_language(settings))
    if signup.subscriber_id is not None:
        confirm_later(
            settings,
            mailer,
            background,
            subscriber_id=signup.subscriber_id,
            email=signup.email,
            name=signup.name,
            list_names=signup.list_names,
            language=language,
        )
    return signup, language


async def _form_signup(request: Request, background: BackgroundTasks) -> Response:
    """A browser's form post: 303 to the thank-you page, or the form again with the errors."""
    raw = await _read_body(request, is_form=True)
    lang = str((await request.form()).get("lang", ""))  # the hosted form's ?lang=, if any
    try:
        signup, language = await _sign_up(request, raw, background)
    except ValidationError as exc:
        fields = {_FIELD_OF.get(str(e["loc"][0]), "email") for e in exc.errors() if e["loc"]}
        return await _form_again(request, raw, fields, lang)
    except Invalid as exc:
        return await _form_again(
            request, raw, {_FIELD_OF.get(exc.loc[-1] if exc.loc else "", "email")}, lang
        )
    lang = lang if i18n.is_shipped(lang) else language
    default = i18n.default_language(request.app.state.settings)
    suffix = f"&lang={lang}" if lang != default else ""  # the default needs no parameter
    return RedirectResponse(f"/subscribe/thanks?status={signup.status}{suffix}", status_code=303)


async def _form_again(request: Request, raw: Any, fields: set[str], lang: str) -> Response:
    errors: dict[str, str] = {f: _MESSAGES[f] for f in ("email", "name", "list") if f in fields}
    values = {"email": str(raw.get("email", "")), "name": str(raw.get("name", "")),
              "lists": raw.get("lists", [])}  # fmt: skip
    async with transaction(request.app.state.sessionmaker) as session:
        return await render_form(
            request, session, values=values, errors=errors, status_code=422, lang=lang
        )


@router.post(
    "/api/v1/subscribe",
    tags=["sign-up"],
    status_code=202,
    response_model=SubscribeOut,
    dependencies=[Depends(rate_limited("subscribe"))],
    openapi_extra={"requestBody": _SUBSCRIBE_BODY},
    responses={303: {"description": "a browser's form post: to the thank-you page"}},
)
async def subscribe(request: Request, background: BackgroundTasks) -> Response:
    """Public sign-up (JSON or form); the same answer whether the address was known or not."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_form = content_type in _FORM_TYPES
    if is_form and "text/html" in request.headers.get("accept", ""):
        return await _form_signup(request, background)
    raw = await _read_body(request, is_form=is_form)
    try:
        signup, _ = await _sign_up(request, raw, background)
    except ValidationError as exc:
        located = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(located) from None
    return JSONResponse({"status": signup.status}, status_code=202)


@router.post(
    "/subscribe",
    include_in_schema=False,
    dependencies=[Depends(rate_limited("subscribe"))],
)
async def subscribe_form(request: Request, background: BackgroundTasks) -> Response:
    """The hosted form's post: answered on /subscribe itself, never on the API's address."""
    return await _form_signup(request, background)
