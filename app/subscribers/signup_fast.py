"""`POST /api/v1/subscribe` with a JSON body, answered as plain ASGI ahead of the middleware.

The common sign-up went through nine middlewares, FastAPI's routing and dependency
resolution, about 1.5 ms of CPU before our code ran. `SignupFastPath` answers it first,
keeping every rule of the route (public.subscribe): the body limit (a declared length
over it, or a body that grows past it, is the route's), the body deadline (the route is
handed what arrived, then the BodyTimeout that BodyTimeoutMiddleware would raise), the
per-client rate limit (the same limiter: its verdict is handed on, app.security.VERDICTS,
so nothing is counted twice), JSON parsing, SubscribeIn, the same answer whether the
address was known or not, 202 {"status"}. The write goes through group commit
(signup_batch.py): the 202 is sent after its COMMIT.

Anything else goes on to the route with the body replayed, so its answers stay the
route's own byte for byte: forms, other content types, a 429, invalid JSON, a validation
error, an unknown list, any failure of the write (which then runs alone there).

The confirmation email is built and sent after the answer, inside the same ASGI call,
exactly as the route's background task does: a server that shuts down waits for it; a
process that dies first loses it, and the subscription stays pending until the person
signs up again for a new link (the answer said nothing more than "pending").
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import branding, i18n, metrics
from app.errors import DomainError
from app.middleware import BodyTimeout
from app.security import VERDICTS, client_address, take_hit
from app.subscribers.emails import confirm
from app.subscribers.schemas import SubscribeIn
from app.subscribers.signup import SignUp
from app.subscribers.signup_batch import group_commit

log = logging.getLogger(__name__)
PATH = "/api/v1/subscribe"
_ANSWERS = {s: json.dumps({"status": s}, separators=(",", ":")).encode() for s in
            ("pending", "confirmed")}  # fmt: skip


def _json_body_declared(scope: Scope) -> tuple[bool, int]:
    """Whether the request says it is JSON, and its declared length (0 unknown, -1 invalid)."""
    is_json, length, typed = False, 0, False
    for name, value in scope["headers"]:
        if name == b"content-type" and not typed:  # the first, as the route reads it
            is_json = value.split(b";")[0].strip().lower() == b"application/json"
            typed = True
        elif name == b"content-length":
            length = int(value) if value.isdigit() else -1
    return is_json, length


class SignupFastPath:
    """ASGI middleware, outermost: the JSON sign-up answered before the rest of the stack."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        is_json, declared = _json_body_declared(scope)
        settings = scope["app"].state.settings
        if not is_json or declared < 0 or declared > settings.max_body_bytes:
            await self.app(scope, receive, send)  # the route, or the body limit's 413
            return
        start = time.perf_counter()
        state = scope["app"].state
        if not take_hit(state, "subscribe", client_address(Request(scope))):
            scope[VERDICTS] = {"subscribe": False}
            await self.app(scope, receive, send)  # the route's own 429
            return
        scope[VERDICTS] = {"subscribe": True}  # if the route answers after all, not again
        read: list[Message] = []
        try:
            body = await _read(receive, read, settings.max_body_bytes, settings.body_timeout)
        except TimeoutError:  # the route answers it as BodyTimeoutMiddleware has it answered
            await self.app(scope, _replay(read, _too_late(settings.body_timeout)), send)
            return
        signup = None if body is None else await _signed_up(state, body)
        if signup is None:
            await self.app(scope, _replay(read, receive), send)
            return
        answer = _ANSWERS[signup.status]
        await send({"type": "http.response.start", "status": 202, "headers": [
            (b"content-length", b"%d" % len(answer)), (b"content-type", b"application/json"),
        ]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})
        metrics.count_request("POST", PATH, 202, time.perf_counter() - start)
        if signup.subscriber_id is not None:
            await _confirm(state, signup)


async def _read(receive: Receive, read: list[Message], limit: int, seconds: float) -> bytes | None:
    """The whole body within `seconds`; None when it went past `limit` or the client left."""
    chunks, size = [], 0
    async with asyncio.timeout(seconds):
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _signed_up(state: Any, body: bytes) -> SignUp | None:
    """The committed sign-up, or None for anything the route must answer itself."""
    try:
        data = SubscribeIn.model_validate(json.loads(body))
        return await group_commit(state).submit(data)
    except Exception as exc:  # noqa: BLE001 - the route gives every refusal and error its answer
        if not isinstance(exc, ValueError | RecursionError | DomainError):  # the input's fault
            log.info("sign-up handed to the route: %s: %s", type(exc).__name__, exc)
        return None


def _replay(read: list[Message], receive: Receive) -> Receive:
    """`receive` that gives the messages already read first, then the client's."""
    pending = list(read)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _too_late(seconds: float) -> Receive:
    """`receive` for a body past its deadline: what BodyTimeoutMiddleware's would raise."""

    async def receive() -> Message:
        raise BodyTimeout(seconds)

    return receive


async def _confirm(state: Any, signup: SignUp) -> None:
    """The confirmation, after the answer (public.confirm_later's work, here inline)."""
    settings = state.settings
    try:
        await branding.refresh_if_stale(state)  # as the middleware would: one at a time
        await confirm(
            settings, state.mailer, subscriber_id=signup.subscriber_id or 0, email=signup.email,
            name=signup.name, list_names=signup.list_names,
            language=i18n.language_of(signup.languages, i18n.default_language(settings)),
        )  # fmt: skip
    except Exception:  # noqa: BLE001 - the sign-up stands; a background task would log it too
        log.exception("confirmation email not built")


def install(app: Any) -> None:
    """Put SignupFastPath outermost in `app`, once (before the app's first request)."""
    if not any(m.cls is SignupFastPath for m in app.user_middleware):
        app.add_middleware(SignupFastPath)
