"""Provider webhooks: their documented payloads, and each one's signature scheme."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from app.bounces import sns
from app.bounces.providers import (
    SignatureError,
    parse_mailgun,
    parse_postmark,
    parse_sendgrid,
    parse_ses,
    verify_mailgun,
    verify_sendgrid,
    verify_sns,
)
from tests.certs import self_signed

FIXTURES = Path(__file__).parent / "fixtures"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def wrap(message: dict) -> dict:
    """An SNS Notification carrying an SES notification, as SES delivers through SNS."""
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-bounces",
        "Message": json.dumps(message),
        "Timestamp": "2016-01-27T14:59:38.237Z",
        "SignatureVersion": "1",
        "SigningCertURL": CERT_URL,
    }


@pytest.mark.parametrize("wrapped", [False, True])
def test_ses_permanent_bounce(wrapped):
    payload = load("ses_bounce_permanent.json")
    events = parse_ses(wrap(payload) if wrapped else payload)
    assert [(e.email, e.type, e.status, e.counts) for e in events] == [
        ("jane@example.com", "hard", "5.1.1", True),
        ("richard@example.com", "hard", "5.1.1", True),
    ]
    assert events[0].message_id == "<issue12.tok-ses@news.example.org>"
    assert events[0].verp_token == "tok-ses"
    assert events[0].provider_id == "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000"
    assert events[0].event_key != events[1].event_key
    assert [e.event_key for e in parse_ses(payload)] == [e.event_key for e in events]


def test_ses_transient_bounce_and_complaint():
    [soft] = parse_ses(wrap(load("ses_bounce_transient.json")))
    assert (soft.type, soft.counts, soft.verp_token) == ("soft", True, "tok-ses2")
    [complaint] = parse_ses(load("ses_complaint.json"))
    assert (complaint.type, complaint.email) == ("complaint", "richard@example.com")
    assert complaint.message_id == "<issue12.tok-ses3@news.example.org>"
    assert complaint.occurred_at == datetime(2016, 1, 27, 14, 59, 38, 237000, UTC)


def test_ses_subscription_confirmation_holds_no_bounce():
    assert parse_ses({"Type": "SubscriptionConfirmation", "Message": "You have chosen..."}) == []


def test_sendgrid_events():
    events = parse_sendgrid(load("sendgrid_events.json"))
    got = [(e.email, e.type, e.counts) for e in events]
    assert got == [
        ("example@example.com", "hard", True),
        ("blocked@example.com", "soft", False),
        ("example@example.com", "hard", True),
        ("spammy@example.com", "complaint", True),
        ("example@example.com", "complaint", True),
        ("example@example.com", "unsubscribe", True),
        ("example@example.com", "unsubscribe", True),
    ]
    bounce = events[0]
    assert bounce.event_key == "sendgrid:6g4ZI7SA-xmRDv57GoPIPw=="
    assert bounce.provider_id == "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"
    assert (bounce.message_id, bounce.verp_token) == ("<issue12.tok-sg@news.example.org>", "tok-sg")


def test_postmark_bounce_and_spam_complaint():
    [bounce] = parse_postmark(load("postmark_bounce.json"))
    assert (bounce.type, bounce.email, bounce.counts) == ("hard", "john@example.com", True)
    assert bounce.provider_id == "883953f4-6105-42a2-a16a-77a8eac79483"
    assert (bounce.message_id, bounce.verp_token) == ("<issue12.tok-pm@news.example.org>", "tok-pm")
    assert bounce.event_key == "postmark:Bounce:4323372036854775807"
    assert bounce.occurred_at == datetime(2019, 11, 5, 16, 33, 54, 907025, UTC)
    [complaint] = parse_postmark(load("postmark_spam_complaint.json"))
    assert (complaint.type, complaint.event_key) == ("complaint", "postmark:SpamComplaint:42")
    assert parse_postmark({**load("postmark_bounce.json"), "Type": "AutoResponder"}) == []


def test_mailgun_events():
    [hard] = parse_mailgun(load("mailgun_failed_permanent.json"))
    assert (hard.type, hard.email, hard.counts) == ("hard", "alice@example.com", True)
    assert hard.message_id == "<issue12.tok-mg@news.example.org>"
    assert (hard.verp_token, hard.event_key) == ("tok-mg", "mailgun:G9Bn5sl1TC6nu79C8C0bwg")
    [soft] = parse_mailgun(load("mailgun_failed_temporary.json"))
    assert (soft.type, soft.counts) == ("soft", True)
    [complaint] = parse_mailgun(load("mailgun_complained.json"))
    assert complaint.type == "complaint"


# --- signatures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed(key, "sns.amazonaws.com")
    return key, cert.public_bytes(serialization.Encoding.PEM)


def signed(message: dict, key, version: str = "1") -> dict:
    """Sign message canonically, the way SNS does, with the test's key."""
    message = {**message, "SignatureVersion": version, "SigningCertURL": CERT_URL}
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
    signature = key.sign(sns.canonical_string(message), padding.PKCS1v15(), algorithm)
    return {**message, "Signature": base64.b64encode(signature).decode()}


CONFIRMATION = {
    "Type": "SubscriptionConfirmation",
    "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
    "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3",
    "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-bounces",
    "Message": "You have chosen to subscribe to the topic ...",
    "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336",
    "Timestamp": "2012-04-26T20:45:04.751Z",
}


@pytest.mark.parametrize("version", ["1", "2"])
async def test_sns_signatures(signer, version):
    key, pem = signer
    fetched: list[str] = []

    async def fetch(url: str) -> bytes:
        fetched.append(url)
        return pem

    sns._cert_cache.clear()
    notification = signed(wrap(load("ses_complaint.json")), key, version)
    await verify_sns(notification, fetch_cert=fetch)
    await verify_sns(signed(CONFIRMATION, key, version), fetch_cert=fetch)
    assert fetched == [CERT_URL]  # cached after the first fetch
    tampered = {**notification, "Message": notification["Message"].replace("abuse", "other")}
    with pytest.raises(SignatureError):
        await verify_sns(tampered, fetch_cert=fetch)
    with pytest.raises(SignatureError):  # a field of the confirmation's canonical set
        await verify_sns({**signed(CONFIRMATION, key, version), "Token": "x"}, fetch_cert=fetch)


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example.com/cert.pem",
        "https://evil.example.com/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://s3.amazonaws.com/cert.pem",
    ],
)
async def test_sns_refuses_certificates_from_elsewhere(signer, url):
    key, pem = signer

    async def fetch(_: str) -> bytes:
        return pem

    message = {**signed(CONFIRMATION, key), "SigningCertURL": url}
    with pytest.raises(SignatureError):
        await verify_sns(message, fetch_cert=fetch)


def test_sendgrid_ecdsa():
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    payload, timestamp = (FIXTURES / "sendgrid_events.json").read_bytes(), "1600112502"
    signature = base64.b64encode(key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256())))
    verify_sendgrid(
        public_key=public,
        payload=payload,
        signature=signature.decode(),
        timestamp=timestamp,
        now=1600112502 + 299,
    )
    for changed in (
        {"payload": payload + b" "},
        {"timestamp": "1600112503"},
        {"signature": "not base64!"},
        {"public_key": "AAAA"},
        {"now": None},  # today: years after the signature
    ):
        args = {
            "public_key": public,
            "payload": payload,
            "signature": signature.decode(),
            "timestamp": timestamp,
            "now": 1600112502,
        }
        with pytest.raises(SignatureError):
            verify_sendgrid(**{**args, **changed})
    with pytest.raises(SignatureError, match="stale"):  # genuine, but captured long ago
        verify_sendgrid(**{**args, "now": 1600112502 + 301})


def test_mailgun_hmac():
    key, timestamp, token = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0", "1529006854", "a8ce0edb2dd8301d"
    good = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    args = {"signing_key": key, "timestamp": timestamp, "token": token, "signature": good}
    verify_mailgun(**args, now=1529006900)
    with pytest.raises(SignatureError):
        verify_mailgun(**{**args, "signature": "0" * 64}, now=1529006900)
    with pytest.raises(SignatureError):
        verify_mailgun(**{**args, "token": "replayed-with-another-token"}, now=1529006900)
    with pytest.raises(SignatureError):  # genuine but stale: a replay
        verify_mailgun(**args, now=1529006854 + 301)
    with pytest.raises(SignatureError):
        verify_mailgun(**{**args, "timestamp": "soon"}, now=1529006900)


def test_sendgrid_numeric_status_and_reason_are_read_as_text() -> None:
    events = parse_sendgrid(
        [
            {
                "event": "bounce",
                "email": "num@example.org",
                "status": 550,
                "reason": 511,
                "sg_event_id": "numeric-1",
            }
        ]
    )
    assert len(events) == 1
    assert events[0].status == "550"
    assert events[0].type == "hard"
