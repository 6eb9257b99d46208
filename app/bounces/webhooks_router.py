"""Bounce webhooks: raw DSNs and the providers' event callbacks, each behind its own proof.

A provider webhook is accepted with the provider's own signature where it has one, or
with the shared TIDINGS_WEBHOOK_SECRET (`?secret=` or `X-Tidings-Secret`). Anything
else is a 401 and nothing is recorded. Every event goes through `record_bounce`, whose
event keys make a retried delivery of the same webhook one bounce.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.bounces.dsn import BounceEvent, NotABounce, parse_bounce_email
from app.bounces.policy import record_bounce
from app.bounces.providers import (
    FRESHNESS,
    SignatureError,
    parse_mailgun,
    parse_postmark,
    parse_sendgrid,
    parse_ses,
    verify_mailgun,
    verify_sendgrid,
    verify_sns,
)
from app.bounces.replay import first_use
from app.config import Settings
from app.deps import SessionDep, SettingsDep

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks", tags=["webhooks"])

# SNS asks us to confirm a subscription by visiting this; never follow it anywhere else.
# fullmatch over printable characters only: a newline or space would be httpx's InvalidURL.
SUBSCRIBE_URL = re.compile(r"https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/\?[!-~]*")
UNAUTHORIZED = "a valid provider signature or webhook secret is required"


def has_shared_secret(request: Request, settings: Settings) -> bool:
    """True when the request carries the configured shared secret (constant-time compare)."""
    expected = settings.webhook_secret
    given = request.headers.get("x-tidings-secret") or request.query_params.get("secret")
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _deny() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(422, "the body is not JSON") from exc


def _parse(parser: Callable[[Any], list[BounceEvent]], payload: Any) -> list[BounceEvent]:
    """Run a provider parser; a payload of the wrong shape is the sender's error, a 422."""
    try:
        return parser(payload)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise HTTPException(422, f"unreadable payload: {type(exc).__name__}") from exc


async def _record_all(
    session: AsyncSession, settings: Settings, events: list[BounceEvent], source: str
) -> int:
    recorded = 0
    for event in events:
        if await record_bounce(session=session, settings=settings, event=event, source=source):
            recorded += 1
    return recorded


@router.post("/dsn", status_code=status.HTTP_202_ACCEPTED)
async def dsn(request: Request, session: SessionDep, settings: SettingsDep) -> dict:
    """Take one raw email as received at the bounce mailbox (any content type; shared secret)."""
    if not has_shared_secret(request, settings):
        raise _deny()
    raw = await request.body()
    try:
        events = parse_bounce_email(raw)
    except NotABounce as exc:
        raise HTTPException(422, f"not a bounce: {exc}") from exc
    await _record_all(session, settings, events, "dsn")
    return {
        "bounces": [
            {"email": e.email, "type": e.type, "status": e.status, "diagnostic": e.diagnostic}
            for e in events
        ]
    }


def _injected_fetch(request: Request) -> Callable[[str], Awaitable[bytes]] | None:
    """Tests put a local fetch on app.state.sns_fetch; production uses the real ones."""
    return getattr(request.app.state, "sns_fetch", None)


async def _confirm_subscription(url: str) -> bytes:
    """GET the SubscribeURL: no redirects followed, and the answer's body is not read."""
    async with (
        httpx.AsyncClient(timeout=10, follow_redirects=False) as client,
        client.stream("GET", url) as response,
    ):
        response.raise_for_status()
    return b""


@router.post("/ses")
async def ses(request: Request, session: SessionDep, settings: SettingsDep) -> dict:
    """Amazon SES notifications over SNS: signature verified; subscriptions are confirmed."""
    message = _json(await request.body())
    if not isinstance(message, dict):
        raise HTTPException(422, "expected an SNS message object")
    injected = _injected_fetch(request)
    if not has_shared_secret(request, settings):
        try:
            # The default certificate fetch checks the URL, refuses redirects and caps size.
            await verify_sns(message, fetch_cert=injected)
        except SignatureError as exc:
            log.warning("SNS message refused: %s", exc)
            raise _deny() from exc
    if message.get("Type") == "SubscriptionConfirmation":
        url = str(message.get("SubscribeURL") or "")
        if not SUBSCRIBE_URL.fullmatch(url):
            raise HTTPException(422, "SubscribeURL is not an https amazonaws.com SNS URL")
        try:
            await (injected or _confirm_subscription)(url)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise HTTPException(502, "could not confirm the SNS subscription") from exc
        return {"confirmed": True}
    events = _parse(parse_ses, message)
    recorded = await _record_all(session, settings, events, "ses")
    return {"received": len(events), "recorded": recorded}


@router.post("/sendgrid")
async def sendgrid(request: Request, session: SessionDep, settings: SettingsDep) -> dict:
    """SendGrid's event webhook: signed with ECDSA (or the shared secret)."""
    raw = await request.body()
    if not has_shared_secret(request, settings):
        key = settings.sendgrid_verification_key
        signature = request.headers.get("x-twilio-email-event-webhook-signature")
        stamp = request.headers.get("x-twilio-email-event-webhook-timestamp")
        if not (key and signature and stamp):
            raise _deny()
        try:
            verify_sendgrid(public_key=key, payload=raw, signature=signature, timestamp=stamp)
        except SignatureError as exc:
            raise _deny() from exc
    payload = _json(raw)
    if not isinstance(payload, list):
        raise HTTPException(422, "expected a JSON array of SendGrid events")
    events = _parse(parse_sendgrid, payload)
    recorded = await _record_all(session, settings, events, "sendgrid")
    return {"received": len(events), "recorded": recorded}


def _postmark_basic_auth(request: Request, settings: Settings) -> bool:
    """Postmark signs nothing; its webhooks carry HTTP Basic credentials we configure."""
    token = settings.postmark_webhook_token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if not token or scheme.lower() != "basic":
        return False
    try:
        password = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(password.encode(), token.encode())


@router.post("/postmark")
async def postmark(request: Request, session: SessionDep, settings: SettingsDep) -> dict:
    """Postmark bounce and spam-complaint webhooks (Basic auth token or the shared secret)."""
    if not (has_shared_secret(request, settings) or _postmark_basic_auth(request, settings)):
        raise _deny()
    payload = _json(await request.body())
    if not isinstance(payload, dict):
        raise HTTPException(422, "expected a Postmark webhook object")
    events = _parse(parse_postmark, payload)
    recorded = await _record_all(session, settings, events, "postmark")
    return {"received": len(events), "recorded": recorded}


@router.post("/mailgun")
async def mailgun(request: Request, session: SessionDep, settings: SettingsDep) -> dict:
    """Mailgun event webhooks: HMAC-signed with the signing key (or the shared secret)."""
    payload = _json(await request.body())
    if not isinstance(payload, dict):
        raise HTTPException(422, "expected a Mailgun webhook object")
    if not has_shared_secret(request, settings):
        proof = payload.get("signature")
        key = settings.mailgun_signing_key
        if not key or not isinstance(proof, dict):
            raise _deny()
        token = str(proof.get("token", ""))
        try:
            verify_mailgun(
                signing_key=key,
                timestamp=str(proof.get("timestamp", "")),
                token=token,
                signature=str(proof.get("signature", "")),
            )
        except SignatureError as exc:
            raise _deny() from exc
        # The HMAC proves the token, not the event beside it: each token works once.
        if not await first_use(session=session, provider="mailgun", token=token, window=FRESHNESS):
            log.warning("Mailgun webhook refused: its token was used before")
            raise _deny()
    events = _parse(parse_mailgun, payload)
    recorded = await _record_all(session, settings, events, "mailgun")
    return {"received": len(events), "recorded": recorded}
