"""Webhook calls to a real receiver on 127.0.0.1: retried through 500s, a stall and a
redirect until it recovers, then delivered once and verified with `standardwebhooks`;
refused at connect time when the name now points inside; disabled after failing; replay."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook as Verifier

from app.webhooks import addresses
from app.webhooks.models import Webhook, WebhookDelivery
from app.webhooks.outbox import Policy
from app.webhooks.sender import make_client
from tests.conftest import AppClient, make_list
from tests.webhooks.helpers import FAST, QUICK_TIMEOUT, eventually, register, running_sender
from tests.webhooks.receiver import serve


@pytest.fixture
async def loopback(app_factory: Any) -> AppClient:
    """An app allowed to call loopback, where the test receivers listen."""
    client: AppClient = await app_factory(webhook_allow_private=True)
    return client


async def _log(client: AppClient, webhook_id: int) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/webhooks/{webhook_id}/deliveries")
    assert r.status_code == 200
    return list(r.json()["items"])


async def test_retried_until_the_receiver_recovers_then_delivered_once(
    loopback: AppClient,
) -> None:
    await make_list(loopback, "news")
    with serve(plan=[500, 500, "slow", "redirect"]) as receiver, serve() as elsewhere:
        hook = await register(loopback, receiver.url, ["subscriber.created"])
        ann = {"email": "ann@example.org", "name": "Ann", "lists": ["news"]}
        r = await loopback.post("/api/v1/subscribers", json=ann)
        assert r.status_code == 201
        async with running_sender(loopback):
            await eventually(lambda: receiver.delivered())
            log = await eventually(lambda: _done(loopback, hook["id"]), seconds=10)
        assert len(receiver.delivered()) == 1
        assert elsewhere.calls == []  # the redirect was never followed
    call = receiver.delivered()[0]
    body = Verifier(hook["secret"]).verify(call.body, call.headers)
    assert body["type"] == "subscriber.created"
    assert body["data"] == {"id": r.json()["id"], "email": "ann@example.org", "name": "Ann"}
    # Every attempt carried the same message id (receivers deduplicate on it).
    assert len({c.headers["webhook-id"] for c in receiver.calls}) == 1
    (delivery,) = log
    assert delivery["status"] == "delivered" and delivery["attempts"] == 5
    codes = [a["status_code"] for a in delivery["log"]]
    assert codes[:2] == [500, 500] and codes[2] is None and codes[3:] == [302, 200]
    assert delivery["log"][0]["error"] == "HTTP 500"
    assert len(delivery["log"][0]["response_body"]) == 1000  # bounded
    assert "Timeout" in delivery["log"][2]["error"]
    assert "redirect to http://127.0.0.2:9/elsewhere not followed" in delivery["log"][3]["error"]
    assert delivery["log"][4]["response_body"] == "thanks"


async def _done(client: AppClient, webhook_id: int) -> list[dict[str, Any]] | None:
    log = await _log(client, webhook_id)
    return log if log and log[0]["status"] != "pending" else None


async def test_refused_at_connect_time_when_the_name_now_points_inside(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {"now": ["93.184.216.34"]}

    async def rebinding(host: str, port: int) -> list[str]:
        return answers["now"]

    monkeypatch.setattr(addresses, "resolve", rebinding)
    with serve() as receiver:
        url = f"http://rebind.example:{receiver.port}/hook"
        hook = await register(client, url, ["subscriber.created"])  # public when checked
        answers["now"] = ["127.0.0.1"]  # ...and loopback when called
        await client.post("/api/v1/subscribers", json={"email": "bo@example.org"})
        async with running_sender(client):
            log = await eventually(lambda: _attempted(client, hook["id"]))
        assert receiver.calls == []
    error = log[0]["log"][0]["error"]
    assert error == "refused: rebind.example resolves to 127.0.0.1, a loopback address"
    assert log[0]["status"] == "pending"  # retried later, and refused again while inside


async def test_loopback_refused_at_connect_when_not_allowed(loopback: AppClient) -> None:
    with serve() as receiver:
        hook = await register(loopback, f"http://localhost:{receiver.port}/h", ["issue.started"])
        r = await loopback.post(f"/api/v1/webhooks/{hook['id']}/test")
        assert r.status_code == 202 and r.json()["event_type"] == "webhook.test"
        async with running_sender(loopback, webhook_allow_private=False):
            log = await eventually(lambda: _attempted(loopback, hook["id"]))
        assert receiver.calls == []
    assert "localhost resolves to" in log[0]["log"][0]["error"]
    assert "loopback address" in log[0]["log"][0]["error"]


async def _attempted(client: AppClient, webhook_id: int) -> list[dict[str, Any]] | None:
    log = await _log(client, webhook_id)
    return log if log and log[0]["log"] else None


async def test_disabled_after_failing_with_the_reason(loopback: AppClient) -> None:
    policy = Policy(delays=FAST.delays, disable_after=timedelta(0), disable_failures=3)
    with serve(default=500) as receiver:
        hook = await register(loopback, receiver.url, ["subscriber.created"])
        for n in range(2):
            await loopback.post("/api/v1/subscribers", json={"email": f"p{n}@example.org"})
        async with running_sender(loopback, policy=policy):
            got = await eventually(lambda: _disabled(loopback, hook["id"]))
            calls = len(receiver.calls)
        assert 3 <= calls <= 3 + 4  # what was in flight when it was disabled may end
        assert got["disabled_reason"].startswith("disabled: every call failed")
        assert got["disabled_reason"].endswith("last: HTTP 500")
        # Pending deliveries wait; enabling it again sends them once the receiver is well.
        receiver.default = "ok"
        r = await loopback.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": True})
        assert r.json()["consecutive_failures"] == 0
        async with running_sender(loopback, policy=policy):
            await eventually(lambda: len(receiver.delivered()) == 2)
    emails = sorted(json.loads(c.body)["data"]["email"] for c in receiver.delivered())
    assert emails == ["p0@example.org", "p1@example.org"]


async def _disabled(client: AppClient, webhook_id: int) -> dict[str, Any] | None:
    got = (await client.get(f"/api/v1/webhooks/{webhook_id}")).json()
    return None if got["enabled"] else dict(got)


async def test_replay_sends_the_event_again(loopback: AppClient) -> None:
    with serve() as receiver:
        hook = await register(loopback, receiver.url, ["subscriber.created"])
        await loopback.post("/api/v1/subscribers", json={"email": "cy@example.org"})
        async with running_sender(loopback):
            await eventually(lambda: len(receiver.delivered()) == 1)
            (first,) = await _log(loopback, hook["id"])
            base = f"/api/v1/webhooks/{hook['id']}/deliveries"
            r = await loopback.post(f"{base}/{first['id']}/replay")
            assert r.status_code == 202, r.text
            assert r.json()["replay_of"] == first["id"] and r.json()["status"] == "pending"
            await eventually(lambda: len(receiver.delivered()) == 2)
        assert (await loopback.post(f"{base}/999999/replay")).status_code == 404
    one, two = receiver.delivered()
    assert one.body == two.body and one.headers["webhook-id"] == two.headers["webhook-id"]
    Verifier(hook["secret"]).verify(two.body, two.headers)


async def test_two_senders_never_send_one_delivery_twice(loopback: AppClient) -> None:
    with serve() as receiver:
        await register(loopback, receiver.url, ["subscriber.created"])
        for n in range(30):
            await loopback.post("/api/v1/subscribers", json={"email": f"x{n}@example.org"})
        async with running_sender(loopback, owner="a"), running_sender(loopback, owner="b"):
            await eventually(lambda: len(receiver.delivered()) >= 30)
            await eventually(lambda: _all_delivered(loopback))
    ids = [c.headers["webhook-id"] for c in receiver.calls]
    assert len(ids) == len(set(ids)) == 30


async def _all_delivered(client: AppClient) -> bool:
    async with client.app.state.sessionmaker() as s:
        statuses = (await s.scalars(select(WebhookDelivery.status))).all()
        hooks = (await s.scalars(select(Webhook.enabled))).all()
    return bool(statuses) and set(statuses) == {"delivered"} and all(hooks)


@pytest.mark.parametrize("certified", ["hooks.example", "other.example"])
async def test_https_to_the_checked_address_with_the_urls_name(
    loopback: AppClient, monkeypatch: pytest.MonkeyPatch, certified: str
) -> None:
    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    monkeypatch.setattr(addresses, "resolve", to_loopback)
    with serve(tls_host=certified) as receiver:
        url = f"https://hooks.example:{receiver.port}/in"
        hook = await register(loopback, url, ["subscriber.created"])
        await loopback.post("/api/v1/subscribers", json={"email": "tls@example.org"})
        client = make_client(QUICK_TIMEOUT, verify=receiver.trust())
        async with running_sender(loopback, http=client):
            log = await eventually(lambda: _attempted(loopback, hook["id"]))
    # The connection went to the address checked, but TLS named the URL's host (SNI) and
    # checked the certificate against it, and Host named it too.
    assert receiver.sni and set(receiver.sni) == {"hooks.example"}
    attempt = log[0]["log"][0]
    if certified == "hooks.example":
        assert attempt["status_code"] == 200, attempt
        (call,) = receiver.calls
        assert call.headers["host"] == f"hooks.example:{receiver.port}"
        Verifier(hook["secret"]).verify(call.body, call.headers)
    else:
        assert attempt["status_code"] is None and receiver.calls == []
        assert "certificate" in attempt["error"].lower() or "hostname" in attempt["error"].lower()


async def test_the_embedded_dispatcher_runs_the_sender(app_factory: Any) -> None:
    client = await app_factory(webhook_allow_private=True, embedded_worker=True)
    with serve() as receiver:
        hook = await register(client, receiver.url, ["subscriber.created"])
        await client.post("/api/v1/subscribers", json={"email": "emb@example.org"})
        await eventually(lambda: receiver.delivered())
        Verifier(hook["secret"]).verify(receiver.calls[0].body, receiver.calls[0].headers)
