"""Size limits: a 30 MB body is refused with 413 and never read into memory.

The body is streamed from a generator that counts what the server pulled, so "not read
into memory" is measured, not assumed: the app must stop reading at about its limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from tests.conftest import AppClient
from tests.security.routes import fill, routes
from tests.security.seed import make_list

BIG = 30 * 1024 * 1024
CHUNK = 64 * 1024
WEBHOOK_SECRET = "limits-webhook-secret"


class Stream:
    """A 30 MB request body produced lazily, one reused 64 KB chunk at a time."""

    def __init__(self, total: int = BIG, fill_byte: bytes = b"a") -> None:
        self.total = total
        self.pulled = 0
        self.chunk = fill_byte * CHUNK

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            self.pulled += CHUNK
            yield self.chunk


def body_routes(app: Any) -> list[tuple[str, str]]:
    """Every route that takes a request body."""
    return [(m, p) for m, p in routes(app) if m in ("POST", "PUT", "PATCH")]


async def _send(
    client: AppClient, method: str, path: str, *, declared: bool, content_type: str
) -> tuple[int, int]:
    stream = Stream()
    headers = {"Content-Type": content_type, "X-Tidings-Secret": WEBHOOK_SECRET}
    if declared:
        headers["Content-Length"] = str(BIG)
    r = await client.request(method, path, content=stream, headers=headers)
    return r.status_code, stream.pulled


def _content_type(path: str) -> str:
    if path.endswith("/import"):
        return "text/csv"
    if path == "/webhooks/dsn":
        return "message/rfc822"
    if path == "/api/v1/media":
        return "multipart/form-data; boundary=x"
    return "application/json"


async def test_declared_30mb_body_refused_before_reading(
    app_factory: Callable[..., Any],
) -> None:
    """With Content-Length: 30 MB, every body route answers 413 and reads not one byte."""
    client = await app_factory(webhook_secret=WEBHOOK_SECRET, max_import_bytes=10_000_000)
    targets = body_routes(client.app)
    assert any(p.startswith("/webhooks/") for _, p in targets), targets
    failures = []
    for method, path in targets:
        status, pulled = await _send(
            client, method, fill(path), declared=True, content_type=_content_type(path)
        )
        if status != 413 or pulled > 0:
            failures.append(f"{method} {path}: {status}, read {pulled} bytes")
    print(f"size limits (declared): {len(targets)} routes refused 30 MB")
    assert not failures, failures


async def test_chunked_30mb_body_cut_off_at_the_limit(app_factory: Callable[..., Any]) -> None:
    """Without Content-Length, reading stops at about the limit: 413, not 30 MB in memory."""
    client = await app_factory(webhook_secret=WEBHOOK_SECRET, max_import_bytes=10_000_000)
    settings = client.app.state.settings
    await make_list(client, "news")  # the import reads its body only for a list that exists
    reading = [
        (m, p)
        for m, p in body_routes(client.app)
        if p.startswith("/webhooks/") or p.startswith("/api/v1/") and "{" not in p
    ]
    failures = []
    most = 0
    for method, path in reading:
        limit = settings.max_import_bytes if path.endswith("/import") else settings.max_body_bytes
        refusals: tuple[int, ...] = (413,)
        if path == "/api/v1/media":
            # An upload's own limit; a body that is not multipart is refused as soon as seen.
            limit, refusals = settings.max_media_bytes + 65_536, (413, 400)
        url = fill(path) + ("?list=news" if path.endswith("/import") else "")
        status, pulled = await _send(
            client, method, url, declared=False, content_type=_content_type(path)
        )
        most = max(most, pulled)
        if pulled > limit + 2 * CHUNK or status not in refusals:
            failures.append(f"{method} {path}: {status}, read {pulled} of {BIG} bytes")
    print(f"size limits (chunked): {len(reading)} routes; most read before refusing: {most} B")
    assert not failures, failures


async def test_chunked_body_to_any_route_never_read_past_limit(
    app_factory: Callable[..., Any],
) -> None:
    """Routes with path parameters too: whatever they answer, no 5xx and no reading past it."""
    client = await app_factory(webhook_secret=WEBHOOK_SECRET, max_import_bytes=10_000_000)
    limit = client.app.state.settings.max_body_bytes
    failures = []
    for method, path in body_routes(client.app):
        if path.endswith("/import"):
            continue
        status, pulled = await _send(
            client, method, fill(path), declared=False, content_type="application/json"
        )
        if status >= 500 or pulled > limit + 2 * CHUNK:
            failures.append(f"{method} {path}: {status}, read {pulled} bytes")
    assert not failures, failures


async def test_body_just_under_the_limit_is_read(app_factory: Callable[..., Any]) -> None:
    """The limit is a limit, not a blanket refusal: a body under it reaches the handler."""
    client = await app_factory(webhook_secret=WEBHOOK_SECRET, max_body_bytes=200_000)
    body = b'{"email": "a@example.org", "type": "hard", "reason": "' + b"x" * 150_000 + b'"}'
    r = await client.post("/api/v1/bounces", content=body)
    assert r.status_code != 413, r.text
    r = await client.post("/api/v1/bounces", content=body + b" " * 60_000)
    assert r.status_code == 413
