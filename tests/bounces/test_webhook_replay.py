"""Signed webhooks are accepted once and only while fresh; malformed URLs are 4xx, never 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.subscribers import factory

FIXTURES = Path(__file__).parent / "fixtures"
KEY = "key-test-mailgun-signing"


def mailgun_proof(stamp: str | None = None) -> dict:
    stamp, token = stamp or str(int(time.time())), uuid.uuid4().hex
    signature = hmac.new(KEY.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": stamp, "token": token, "signature": signature}


def complaint_for(email: str) -> dict:
    return {"event-data": {"event": "complained", "id": uuid.uuid4().hex, "recipient": email}}


async def test_a_mailgun_token_is_accepted_once_across_processes(app_factory) -> None:
    first = await app_factory(mailgun_signing_key=KEY)
    # A second app on the same database stands for a second worker process.
    second = await app_factory(mailgun_signing_key=KEY)
    world = await factory.build(first.app, emails=("alice@example.com", "bob@example.com"))
    payload = json.loads((FIXTURES / "mailgun_failed_permanent.json").read_bytes())
    proof = mailgun_proof()
    r = await first.post("/webhooks/mailgun", json={**payload, "signature": proof})
    assert r.status_code == 200 and r.json()["recorded"] == 1
    # The captured signature, with its event swapped for a complaint about Bob.
    forged = {**complaint_for("bob@example.com"), "signature": proof}
    for client in (first, second):
        assert (await client.post("/webhooks/mailgun", json=forged)).status_code == 401
    bob = await factory.subscriber(first.app, world.subscribers["bob@example.com"])
    assert bob.status == "active"
    # A fresh token of its own still works, in either process.
    r = await second.post(
        "/webhooks/mailgun", json={**complaint_for("bob@example.com"), "signature": mailgun_proof()}
    )
    assert r.status_code == 200 and r.json()["recorded"] == 1


async def test_a_stale_mailgun_signature_is_refused(app_factory) -> None:
    client = await app_factory(mailgun_signing_key=KEY)
    old = mailgun_proof(str(int(time.time()) - 301))
    r = await client.post("/webhooks/mailgun", json={**complaint_for("a@b.c"), "signature": old})
    assert r.status_code == 401


async def test_sendgrid_signatures_have_a_freshness_window(app_factory) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    client = await app_factory(sendgrid_verification_key=public.decode())
    await factory.build(client.app, emails=("spammy@example.com",))
    payload = (FIXTURES / "sendgrid_events.json").read_bytes()

    def signed(stamp: str) -> dict:
        signature = base64.b64encode(key.sign(stamp.encode() + payload, ec.ECDSA(hashes.SHA256())))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": signature.decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }

    for stamp in ("1000000000", str(int(time.time()) - 301), "nan", "soon"):  # 2001, too old
        r = await client.post("/webhooks/sendgrid", content=payload, headers=signed(stamp))
        assert r.status_code == 401, stamp
    r = await client.post(
        "/webhooks/sendgrid", content=payload, headers=signed(str(int(time.time())))
    )
    assert r.status_code == 200 and r.json()["recorded"] > 0


async def test_ses_urls_with_a_newline_are_refused_not_500(app_factory) -> None:
    # No injected fetch: the real certificate fetch would meet httpx.InvalidURL.
    client = await app_factory()
    url = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
    message = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-bounces",
        "Message": "{}",
        "Timestamp": "2026-01-27T14:59:38.237Z",
        "SignatureVersion": "2",
        "Signature": base64.b64encode(b"x" * 256).decode(),
    }
    for bad in (url + "\n", url + " ", "https://sns.eu-west-1.amazonaws.com/a\nb.pem"):
        r = await client.post("/webhooks/ses", json={**message, "SigningCertURL": bad})
        assert r.status_code == 401, bad


async def test_ses_subscribe_url_with_a_newline_is_422(app_factory) -> None:
    client = await app_factory(webhook_secret="s3cret")
    message = {
        "Type": "SubscriptionConfirmation",
        "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Confirm&Token=a\n",
    }
    r = await client.post("/webhooks/ses?secret=s3cret", json=message)
    assert r.status_code == 422
