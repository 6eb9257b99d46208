"""A bounce webhook's 2xx means the bounce is committed: a provider never retries a 2xx."""

from __future__ import annotations

import time

import httpx

from tests.bounces.corpus_check import CORPUS
from tests.test_durable_writes import SLOW_COMMIT, ThreadedServer, _failing_commit, count, live

__all__ = ["live"]  # the live-server fixture, shared with the API's own durability test

RAW = (CORPUS / "sisimai/lhost-opensmtpd-17.eml").read_bytes()  # two recipients, two reasons
URL = "/webhooks/dsn?secret=hook-secret"


async def test_a_202_from_the_dsn_webhook_is_already_committed(live: ThreadedServer, db: str):
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        live.commit_hook = lambda: time.sleep(SLOW_COMMIT)
        try:
            r = await http.post(URL, content=RAW)
            seen = await count(db, "SELECT count(*) FROM bounces")  # at once, elsewhere
        finally:
            live.commit_hook = None
    assert r.status_code == 202, r.text
    assert seen == 2


async def test_a_failed_commit_is_not_a_2xx_so_the_provider_retries(live: ThreadedServer, db: str):
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        live.commit_hook = _failing_commit
        try:
            r = await http.post(URL, content=RAW)
        finally:
            live.commit_hook = None
        assert r.status_code == 503
        assert await count(db, "SELECT count(*) FROM bounces") == 0
        retried = await http.post(URL, content=RAW)
    assert retried.status_code == 202
    assert await count(db, "SELECT count(*) FROM bounces") == 2
