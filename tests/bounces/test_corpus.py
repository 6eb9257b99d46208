"""The real-bounce corpus: 95% classified as its sources say, and no sender-side bounce as hard."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.bounces.corpus_check import CORPUS, right, rows, run, table
from tests.subscribers import factory

ROWS = rows()


def test_the_corpus_is_big_and_varied_enough() -> None:
    assert len(ROWS) >= 300
    named = {r.system for r in ROWS if not r.system.startswith("assorted")}
    assert len(named) >= 30
    assert all((CORPUS / r.file).is_file() for r in ROWS)


def test_classification_on_the_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    results = [(r, run(r)) for r in ROWS]
    with capsys.disabled():
        print("\n" + table(results))
        for r, column in results:
            if not right(r, column):
                print(f"  miss: {r.file}: expected {r.expected}, recorded {column}")
    good = sum(right(r, c) for r, c in results)
    assert good / len(results) >= 0.95
    # A good subscriber blocklisted for our own problem is the one error we never accept.
    assert [r.file for r, c in results if r.expected == "policy" and c == "hard"] == []


# One email of each kind through the real endpoint, both backends: what is recorded and who
# is blocklisted follows the classification.
SAMPLES = {
    "sisimai/lhost-dragonfly-24.eml": ("userunknown@libsisimai.net", "hard_bounce"),
    "sisimai/lhost-postfix-58.eml": ("neko-1718501322@gmail.com", None),
    "sisimai/lhost-opensmtpd-14.eml": ("blocked@libsisimai.net", None),
    "sisimai/lhost-sendmail-04.eml": ("kijitora@example.com", None),
    "sisimai/lhost-dragonfly-12.eml": ("mailboxfull@libsisimai.net", None),
    "sisimai/arf-21.eml": ("kijitora@example.org", "complaint"),
    "sisimai/ced-us-amazonses-03.eml": ("complaint@simulator.amazonses.com", "complaint"),
}


async def test_corpus_samples_through_the_dsn_webhook(app_factory) -> None:
    client = await app_factory(webhook_secret="s3cret")
    emails = tuple(address for address, _ in SAMPLES.values())
    world = await factory.build(client.app, emails=emails)
    for name, (address, reason) in SAMPLES.items():
        raw = (CORPUS / name).read_bytes()
        r = await client.post("/webhooks/dsn?secret=s3cret", content=raw)
        assert r.status_code == 202, (name, r.text)
        assert address in [b["email"] for b in r.json()["bounces"]], name
        sub = await factory.subscriber(client.app, world.subscribers[address])
        assert sub.blocklist_reason == reason, name
    # Not a bounce: an SES delivery notice, an auto-reply.
    for name in ("sisimai/email-amazonses-12.eml", "flufl-bounce/qmail_08.txt"):
        r = await client.post("/webhooks/dsn?secret=s3cret", content=(CORPUS / name).read_bytes())
        assert r.status_code == 422, name
    listed = (await client.get("/api/v1/bounces", params={"limit": 1000})).json()["items"]
    assert Counter(b["counts"] for b in listed) == Counter({True: 4, False: 3})
