"""The sign-up fast path (app/subscribers/signup_fast.py) answers as the route does.

Two real uvicorn servers on one database, the same app but that one has the fast path
taken out: every request below goes to both, and the answers (status, headers but the
date, body) must be equal. The common JSON sign-up is answered by the fast path (its
group commit counts it); everything unusual falls through to the route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.subscribers.signup_fast import SignupFastPath
from tests.conftest import ADMIN_TOKEN
from tests.smtp import SMTPServer
from tests.subscribers.helpers import confirm_token
from tests.test_durable_writes import ThreadedServer

Pair = tuple[ThreadedServer, ThreadedServer]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def pair(make_settings: Callable[..., Settings]) -> Iterator[Pair]:
    """(fast, route): 6 sign-ups a minute per client, bodies up to 100 KB."""
    fast = ThreadedServer(make_settings(public_rate_limit=6, max_body_bytes=100_000))
    route = ThreadedServer(make_settings(public_rate_limit=6, max_body_bytes=100_000))
    route.app.user_middleware = [
        m for m in route.app.user_middleware if m.cls is not SignupFastPath
    ]
    fast.start()
    try:
        route.start()
        try:
            yield fast, route
        finally:
            route.stop()
    finally:
        fast.stop()


async def _seed(server: ThreadedServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=ADMIN) as http:
        for slug, double in (("news", True), ("open", False)):
            r = await http.post(
                "/api/v1/lists", json={"slug": slug, "name": slug.title(), "double_opt_in": double}
            )
            assert r.status_code == 201, r.text


async def _received(smtpd: SMTPServer, to: str, count: int) -> int:
    """How many messages to `to` arrived, waiting a while for `count` (sent after the answer)."""
    for _ in range(200):
        found = len([m for m in smtpd.received if to in m.recipients])
        if found >= count:
            return found
        await asyncio.sleep(0.05)
    return found


def _answer(r: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in r.headers.multi_items() if k not in ("date", "server")]
    return r.status_code, headers, r.content


async def _both(pair: Pair, **request: Any) -> tuple[Any, Any]:
    answers = []
    for server in pair:
        async with httpx.AsyncClient(base_url=server.url) as http:
            answers.append(_answer(await http.post("/api/v1/subscribe", **request)))
    return answers[0], answers[1]


def _batched(server: ThreadedServer) -> int:
    group = getattr(server.app.state, "signup_batches", None)
    return 0 if group is None else int(group.committed)


JSON = {"content-type": "application/json"}
UNUSUAL: list[tuple[str, dict[str, Any]]] = [
    ("invalid JSON", {"content": b'{"email": "a@example.com", ', "headers": JSON}),
    ("JSON nested too deep", {"content": b"[" * 20_000 + b"]" * 20_000, "headers": JSON}),
    ("not an object", {"content": b'["a@example.com"]', "headers": JSON}),
    ("no lists", {"json": {"email": "a@example.com"}}),
    ("not an address", {"json": {"email": "not an address", "lists": ["news"]}}),
    ("unknown list", {"json": {"email": "a@example.com", "lists": ["news", "nope"]}}),
    ("a form post", {"data": {"email": "form@example.com", "list": "news"}}),
    (
        "a browser's form post",
        {"data": {"email": "form@example.com", "list": "news"}, "headers": {"accept": "text/html"}},
    ),
    ("over the body limit", {"content": b"x" * 120_000, "headers": JSON}),
    (  # the route reads the first Content-Type: a form, so this is no JSON sign-up
        "two Content-Types",
        {
            "content": b'{"email": "two@example.com", "lists": ["news"]}',
            "headers": [
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-type", "application/json"),
            ],
        },
    ),  # fmt: skip
]


@pytest.mark.parametrize(("what", "request_"), UNUSUAL, ids=[u[0] for u in UNUSUAL])
async def test_unusual_requests_get_the_routes_answer(
    pair: Pair, what: str, request_: dict[str, Any]
) -> None:
    await _seed(pair[0])
    fast, route = await _both(pair, **request_)
    assert fast == route, what
    assert fast[0] in (202, 303, 413, 422), fast
    assert _batched(pair[0]) == 0  # none of these was answered by the fast path


async def test_the_common_sign_up_takes_the_fast_path_with_the_same_answer(
    pair: Pair, smtpd: SMTPServer
) -> None:
    await _seed(pair[0])
    for lists, status in ((["news"], "pending"), (["open"], "confirmed")):
        fast, route = await _both(pair, json={"email": "r@example.com", "lists": lists})
        assert fast == route and fast[0] == 202 and fast[2] == f'{{"status":"{status}"}}'.encode()
    assert _batched(pair[0]) == 2
    # The pending sign-up's confirmation went out (once from each server) with a link.
    assert await _received(smtpd, "r@example.com", 2) == 2
    assert confirm_token(smtpd, "r@example.com")


async def test_rate_limit_counts_each_request_once_and_answers_as_the_route(pair: Pair) -> None:
    """Six a minute: fast-path sign-ups and fall-throughs share one allowance, then 429."""
    await _seed(pair[0])
    requests: list[dict[str, Any]] = [
        {"json": {"email": f"p{i}@example.com", "lists": ["news"]}} for i in range(4)
    ]
    requests[1] = {"content": b"{", "headers": JSON}  # falls through after its hit
    requests[3] = {"json": {"email": "q@example.com", "lists": ["nope"]}}
    requests += [{"json": {"email": "x@example.com", "lists": ["news"]}}] * 2
    for request_ in requests:  # exactly the six allowed, whichever path answered
        fast, route = await _both(pair, **request_)
        assert fast == route and fast[0] != 429
    for request_ in ({"json": {"email": "y@example.com", "lists": ["news"]}},
                     {"content": b"{", "headers": JSON}):  # fmt: skip
        fast, route = await _both(pair, **request_)
        assert fast == route and fast[0] == 429, fast
    assert _batched(pair[0]) == 4


async def test_concurrent_sign_ups_each_get_their_own_answer(pair: Pair, smtpd: SMTPServer) -> None:
    """Many at once (group commit): repeats of one address, a refused one among them."""
    fast = pair[0]
    await _seed(fast)
    bodies = [{"email": f"c{i}@example.com", "lists": ["news"]} for i in range(12)]
    bodies += [{"email": "same@example.com", "lists": ["news", "open"]}] * 4
    bodies += [{"email": "c0@example.com", "lists": ["nope"]}] * 2
    fast.app.state.settings.public_rate_limit = 1000  # one client, 18 requests
    fast.app.state.rate_limiters.clear()
    async with httpx.AsyncClient(base_url=fast.url) as http:
        answers = await asyncio.gather(*(http.post("/api/v1/subscribe", json=b) for b in bodies))
    got = [(r.status_code, r.json().get("status")) for r in answers]
    assert got == [(202, "pending")] * 16 + [(422, None)] * 2
    assert _batched(fast) == 16
    async with httpx.AsyncClient(base_url=fast.url, headers=ADMIN) as http:
        page = (await http.get("/api/v1/subscribers", params={"limit": 100})).json()["items"]
    assert sorted(p["email"] for p in page) == sorted(
        [f"c{i}@example.com" for i in range(12)] + ["same@example.com"]
    )
    same = next(p for p in page if p["email"] == "same@example.com")
    assert sorted((m["slug"], m["status"]) for m in same["lists"]) == [
        ("news", "pending"), ("open", "confirmed"),
    ]  # fmt: skip
    assert await _received(smtpd, "same@example.com", 4) == 4  # each asked, each a link


async def _raw(server: ThreadedServer, head: bytes, body: bytes) -> bytes:
    """Send a request whose body stops short, and read what the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(head + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return answer


async def test_a_body_that_stops_short_gets_the_same_408(
    make_settings: Callable[..., Settings],
) -> None:
    fast = ThreadedServer(make_settings(body_timeout=0.5)).start()
    route = ThreadedServer(make_settings(body_timeout=0.5))
    route.app.user_middleware = [
        m for m in route.app.user_middleware if m.cls is not SignupFastPath
    ]
    route.start()
    try:
        head = (b"POST /api/v1/subscribe HTTP/1.1\r\nHost: t\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")  # fmt: skip
        answers = [await _raw(s, head, b'{"email": ') for s in (fast, route)]
    finally:
        route.stop()
        fast.stop()
    varying = (b"date:", b"server:")
    cut = [b"\r\n".join(h for h in a.split(b"\r\n") if not h.lower().startswith(varying))
           for a in answers]  # fmt: skip
    assert cut[0] == cut[1] and cut[0].startswith(b"HTTP/1.1 408 "), answers
