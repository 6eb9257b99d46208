"""The bounce webhooks and the admin bounce API over HTTP, on both backends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from app import tokens
from app.bounces import sns
from app.issues.compose import message_id
from tests.certs import self_signed
from tests.subscribers import factory

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "shared-webhook-secret"
ANN = "ann@example.org"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def verp(app, delivery_id: int) -> str:
    return tokens.make(app.state.settings.secret_key_value, "verp", delivery_id)


async def bounces(client, **params) -> list[dict]:
    r = await client.get("/api/v1/bounces", params=params)
    assert r.status_code == 200
    return r.json()["items"]


# --- /webhooks/dsn -------------------------------------------------------------------------


async def test_dsn_needs_the_shared_secret(app_factory) -> None:
    client = await app_factory(webhook_secret=SECRET)
    raw = fixture("postfix_5.1.1_unknown_user.eml")
    assert (await client.post("/webhooks/dsn", content=raw)).status_code == 401
    assert (await client.post("/webhooks/dsn?secret=wrong", content=raw)).status_code == 401
    headers = {"X-Tidings-Secret": SECRET + "x"}
    assert (await client.post("/webhooks/dsn", content=raw, headers=headers)).status_code == 401
    assert await bounces(client) == []


async def test_dsn_without_any_configured_secret_is_refused(client) -> None:
    r = await client.post("/webhooks/dsn?secret=", content=fixture("postfix_5.1.1_remote.eml"))
    assert r.status_code == 401


async def test_verp_dsn_maps_to_the_delivery_and_the_stats(app_factory) -> None:
    client = await app_factory(webhook_secret=SECRET)
    world = await factory.build(client.app)
    token = verp(client.app, world.deliveries[ANN])
    raw = fixture("postfix_5.1.1_unknown_user.eml").replace(b"tok-unknown.AbC_1=", token.encode())
    r = await client.post(
        "/webhooks/dsn",
        content=raw,
        headers={"X-Tidings-Secret": SECRET, "content-type": "message/rfc822"},
    )
    assert r.status_code == 202
    assert r.json()["bounces"] == [
        {"email": "nosuchuser@example.com", "type": "hard", "status": "5.1.1",
         "diagnostic": r.json()["bounces"][0]["diagnostic"]}
    ]  # fmt: skip
    again = await client.post("/webhooks/dsn", content=raw, headers={"X-Tidings-Secret": SECRET})
    assert again.status_code == 202
    [bounce] = await bounces(client)
    assert bounce["delivery_id"] == world.deliveries[ANN]
    assert bounce["subscriber_id"] == world.subscribers[ANN] and bounce["source"] == "dsn"
    sub = await factory.subscriber(client.app, world.subscribers[ANN])
    assert (sub.status, sub.blocklist_reason) == ("blocklisted", "hard_bounce")
    stats = (await client.get(f"/api/v1/issues/{world.issue_id}/stats")).json()
    assert stats["bounced"] == 1


async def test_redacted_arf_complaint_found_by_verp(app_factory) -> None:
    client = await app_factory(webhook_secret=SECRET)
    world = await factory.build(client.app)
    token = verp(client.app, world.deliveries[ANN])
    raw = fixture("arf_aol_redacted.eml").replace(b"tok-aol.r3d=", token.encode())
    r = await client.post(f"/webhooks/dsn?secret={SECRET}", content=raw)
    assert r.status_code == 202 and r.json()["bounces"][0]["type"] == "complaint"
    sid = world.subscribers[ANN]
    assert await factory.statuses(client.app, sid) == {
        "news": "unsubscribed",
        "offers": "unsubscribed",
    }
    stats = (await client.get(f"/api/v1/issues/{world.issue_id}/stats")).json()
    assert stats["complained"] == 1


@pytest.mark.parametrize("name", ["not_a_bounce.eml", "autoreply.eml", "broken_mime.eml"])
async def test_not_a_bounce_is_422(app_factory, name: str) -> None:
    client = await app_factory(webhook_secret=SECRET)
    r = await client.post(f"/webhooks/dsn?secret={SECRET}", content=fixture(name))
    assert r.status_code == 422 and r.json()["detail"].startswith("not a bounce")
    assert await bounces(client) == []


async def test_garbage_and_huge_bodies(app_factory) -> None:
    client = await app_factory(webhook_secret=SECRET, max_body_bytes=50_000)
    for body in (b"", b"\x00\xff" * 1000, b"Content-Type: multipart/report; boundary=\r\n\r\n--"):
        r = await client.post(f"/webhooks/dsn?secret={SECRET}", content=body)
        assert r.status_code == 422
    r = await client.post(f"/webhooks/dsn?secret={SECRET}", content=b"x" * 60_000)
    assert r.status_code == 413


# --- Amazon SES over SNS -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sns_signer():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed(key, "sns.amazonaws.com")
    # A certificate URL of this test run only: the module caches certificates by URL.
    url = f"https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-{uuid.uuid4().hex}.pem"
    return key, cert.public_bytes(serialization.Encoding.PEM), url


def sns_signed(message: dict, signer) -> dict:
    key, _, url = signer
    message = {**message, "SignatureVersion": "2", "SigningCertURL": url}
    signature = key.sign(sns.canonical_string(message), padding.PKCS1v15(), hashes.SHA256())
    return {**message, "Signature": base64.b64encode(signature).decode()}


def ses_notification(payload: dict) -> dict:
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-bounces",
        "Message": json.dumps(payload),
        "Timestamp": "2026-01-27T14:59:38.237Z",
    }


@pytest.fixture
async def ses_client(app_factory, sns_signer):
    client = await app_factory()
    fetched: list[str] = []

    async def fetch(url: str) -> bytes:
        fetched.append(url)
        return sns_signer[1] if url == sns_signer[2] else b"confirmed"

    client.app.state.sns_fetch = fetch
    client.fetched = fetched
    return client


async def test_ses_bounce_signed(ses_client, sns_signer) -> None:
    world = await factory.build(ses_client.app, emails=("jane@example.com", "richard@example.com"))
    body = sns_signed(
        ses_notification(json.loads(fixture("ses_bounce_permanent.json"))), sns_signer
    )
    r = await ses_client.post("/webhooks/ses", content=json.dumps(body))
    assert r.status_code == 200 and r.json()["recorded"] == 2
    r = await ses_client.post("/webhooks/ses", content=json.dumps(body))  # SNS retries
    assert r.json()["recorded"] == 0
    found = await bounces(ses_client)
    assert sorted(b["email"] for b in found) == ["jane@example.com", "richard@example.com"]
    assert {b["source"] for b in found} == {"ses"}
    for email in ("jane@example.com", "richard@example.com"):
        sub = await factory.subscriber(ses_client.app, world.subscribers[email])
        assert sub.blocklist_reason == "hard_bounce"


async def test_ses_forged_or_unsigned_is_401(ses_client, sns_signer) -> None:
    await factory.build(ses_client.app, emails=("jane@example.com",))
    body = sns_signed(
        ses_notification(json.loads(fixture("ses_bounce_permanent.json"))), sns_signer
    )
    forged = {**body, "Message": body["Message"].replace("jane", "mary")}
    for payload in (forged, {k: v for k, v in body.items() if k != "Signature"}):
        r = await ses_client.post("/webhooks/ses", content=json.dumps(payload))
        assert r.status_code == 401
    elsewhere = {**body, "SigningCertURL": "https://evil.example.com/cert.pem"}
    assert (await ses_client.post("/webhooks/ses", json=elsewhere)).status_code == 401
    assert await bounces(ses_client) == []


async def test_ses_subscription_is_confirmed(ses_client, sns_signer) -> None:
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=abc"
    message = {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": "abc",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-bounces",
        "Message": "You have chosen to subscribe to the topic",
        "SubscribeURL": url,
        "Timestamp": "2026-01-27T14:59:38.237Z",
    }
    r = await ses_client.post("/webhooks/ses", json=sns_signed(message, sns_signer))
    assert r.status_code == 200 and url in ses_client.fetched
    # A signed confirmation pointing anywhere but AWS is not followed.
    evil = sns_signed({**message, "SubscribeURL": "https://evil.example.com/?x"}, sns_signer)
    assert (await ses_client.post("/webhooks/ses", json=evil)).status_code == 422
    assert "https://evil.example.com/?x" not in ses_client.fetched


async def test_ses_with_the_shared_secret(app_factory) -> None:
    client = await app_factory(webhook_secret=SECRET)
    body = ses_notification(json.loads(fixture("ses_complaint.json")))
    r = await client.post("/webhooks/ses", json=body, headers={"X-Tidings-Secret": SECRET})
    assert r.status_code == 200 and r.json()["recorded"] >= 1
    assert (await client.post("/webhooks/ses", json=body)).status_code == 401


# --- SendGrid, Postmark, Mailgun ------------------------------------------------------------


async def test_sendgrid_ecdsa(app_factory) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    client = await app_factory(sendgrid_verification_key=public.decode())
    world = await factory.build(client.app, emails=("example@example.com", "spammy@example.com"))
    payload, stamp = fixture("sendgrid_events.json"), str(int(time.time()))
    signature = base64.b64encode(key.sign(stamp.encode() + payload, ec.ECDSA(hashes.SHA256())))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": signature.decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "content-type": "application/json",
    }
    forged = await client.post("/webhooks/sendgrid", content=payload + b" ", headers=headers)
    assert forged.status_code == 401
    assert (await client.post("/webhooks/sendgrid", content=payload)).status_code == 401
    assert await bounces(client) == []
    r = await client.post("/webhooks/sendgrid", content=payload, headers=headers)
    assert r.status_code == 200 and r.json()["recorded"] > 0
    again = await client.post("/webhooks/sendgrid", content=payload, headers=headers)
    assert again.json()["recorded"] == 0
    spammy = await factory.subscriber(client.app, world.subscribers["spammy@example.com"])
    assert spammy.blocklist_reason == "complaint"


async def test_postmark_token_or_secret(app_factory) -> None:
    client = await app_factory(postmark_webhook_token="pm-token", webhook_secret=SECRET)
    world = await factory.build(client.app, emails=("john@example.com",))
    body = fixture("postmark_bounce.json")
    assert (await client.post("/webhooks/postmark", content=body)).status_code == 401
    assert (
        await client.post("/webhooks/postmark", content=body, auth=("x", "bad"))
    ).status_code == 401
    r = await client.post("/webhooks/postmark", content=body, auth=("postmark", "pm-token"))
    assert r.status_code == 200 and r.json()["recorded"] == 1
    r = await client.post(f"/webhooks/postmark?secret={SECRET}", content=body)
    assert r.status_code == 200 and r.json()["recorded"] == 0
    sub = await factory.subscriber(client.app, world.subscribers["john@example.com"])
    assert sub.blocklist_reason == "hard_bounce"


def mailgun_signed(payload: dict, key: str) -> dict:
    stamp, token = str(int(time.time())), uuid.uuid4().hex
    signature = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {**payload, "signature": {"timestamp": stamp, "token": token, "signature": signature}}


async def test_mailgun_hmac(app_factory) -> None:
    key = "key-test-mailgun-signing"
    client = await app_factory(mailgun_signing_key=key)
    world = await factory.build(client.app, emails=("alice@example.com",))
    payload = json.loads(fixture("mailgun_failed_permanent.json"))
    assert (await client.post("/webhooks/mailgun", json=payload)).status_code == 401  # stale
    forged = mailgun_signed(payload, "another-key")
    assert (await client.post("/webhooks/mailgun", json=forged)).status_code == 401
    assert await bounces(client) == []
    r = await client.post("/webhooks/mailgun", json=mailgun_signed(payload, key))
    assert r.status_code == 200 and r.json()["recorded"] == 1
    r = await client.post("/webhooks/mailgun", json=mailgun_signed(payload, key))
    assert r.json()["recorded"] == 0
    sub = await factory.subscriber(client.app, world.subscribers["alice@example.com"])
    assert sub.blocklist_reason == "hard_bounce"


async def test_bad_json_is_422_not_500(app_factory) -> None:
    client = await app_factory(webhook_secret=SECRET)
    for path in ("/webhooks/ses", "/webhooks/sendgrid", "/webhooks/postmark", "/webhooks/mailgun"):
        for body in (b"{", b"[1, 2", b"\xff", b'"x"'):
            r = await client.post(f"{path}?secret={SECRET}", content=body)
            assert r.status_code == 422, (path, body)


# --- admin API ------------------------------------------------------------------------------


async def test_admin_bounce_by_email_and_message_id(client, anon) -> None:
    world = await factory.build(client.app)
    assert (
        await anon.post("/api/v1/bounces", json={"email": ANN, "type": "hard"})
    ).status_code == 401
    assert (await anon.get("/api/v1/bounces")).status_code == 401
    r = await client.post("/api/v1/bounces", json={"email": "ANN@example.org", "type": "soft"})
    assert r.status_code == 202
    r = await client.post("/api/v1/bounces", json={"email": "ANN@example.org", "type": "soft"})
    assert r.status_code == 202  # a retried call records nothing new
    mid = message_id(
        client.app.state.settings,
        issue_id=world.issue_id,
        delivery_id=world.deliveries["bob@example.org"],
    )
    r = await client.post("/api/v1/bounces", json={"message_id": mid, "type": "complaint"})
    assert r.status_code == 202
    assert len(await bounces(client)) == 2
    assert [b["type"] for b in await bounces(client, email=ANN)] == ["soft"]
    [complaint] = await bounces(client, type="complaint")
    assert complaint["delivery_id"] == world.deliveries["bob@example.org"]


@pytest.mark.parametrize(
    "body",
    [{"type": "hard"}, {"email": "", "type": "hard"}, {"email": ANN, "type": "bogus"},
     {"email": "a@b.c\r\nBcc: x", "type": "hard"}, {"email": ANN}],
)  # fmt: skip
async def test_admin_bounce_bad_input_is_422(client, body) -> None:
    r = await client.post("/api/v1/bounces", json=body)
    assert r.status_code == 422 and "detail" in r.json()
    assert await bounces(client) == []


async def test_bounce_list_is_paginated(client) -> None:
    for i in range(5):
        r = await client.post(
            "/api/v1/bounces", json={"email": f"u{i}@example.org", "type": "hard"}
        )
        assert r.status_code == 202
    seen: list[int] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/bounces", params=params)).json()
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 == len(set(seen))
    assert (await client.get("/api/v1/bounces", params={"cursor": "!!"})).status_code == 422
    assert (await client.get("/api/v1/bounces", params={"limit": 1001})).status_code == 422


async def test_hostile_field_values_are_stored_safely(app_factory) -> None:
    client = await app_factory(webhook_secret=SECRET)
    events = [
        {"event": "bounce", "email": "a\x00b@example.com", "status": "5.1.1",
         "reason": "x\x00" * 5000, "sg_event_id": "nul"},
        {"event": "spamreport", "email": "x" * 5000 + "@example.com", "reason": {"nested": [1]},
         "sg_event_id": "long", "timestamp": "soon"},
        {"event": "spamreport", "email": "c@example.com", "sg_event_id": ["not", "a", "string"],
         "smtp-id": "\x00<evil>"},
    ]  # fmt: skip
    r = await client.post(f"/webhooks/sendgrid?secret={SECRET}", json=events)
    assert r.status_code == 200 and r.json()["recorded"] == 3
    for b in await bounces(client):
        assert "\x00" not in (b["email"] or "") + (b["diagnostic"] or "") + (b["status"] or "")
        assert len(b["email"]) <= 320
    r = await client.get("/api/v1/bounces", params={"email": "a\x00b@example.com"})
    assert r.status_code == 422
    # A payload of the wrong shape is refused whole, never a 500.
    wrong = [{"event": "bounce", "email": "d@example.com", "status": 550, "sg_event_id": "int"}]
    r = await client.post(f"/webhooks/sendgrid?secret={SECRET}", json=wrong)
    assert r.status_code in (200, 422)
