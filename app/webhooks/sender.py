"""The sender: a task beside each dispatcher that calls webhooks from the outbox.

Started with `start(...)` and stopped with `stop()`; it shares nothing with the
dispatcher but the database. Each turn fans new events out to deliveries, claims the
due ones under a lease, and calls them with bounded concurrency (and at most a few at
once per webhook, so one slow receiver cannot take every slot). A call never follows a
redirect, is bounded by connect and read timeouts and an overall deadline, and goes to
the address that was checked a moment before (DNS rebinding).

httpx is imported when the first call is made, not with this module: every dispatcher
runs a sender, and most have no webhook to call; httpx (with the rich and pygments its
command line pulls in) would cost each of them ~6 MB for nothing (issue 15's memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.webhooks import addresses, outbox, signing
from app.webhooks.outbox import Claim, Outcome, Policy

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("tidings.webhooks")

# About 27.6 hours in all: retried for at least the 24 hours the contract asks.
DELAYS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
POLICY = Policy(delays=DELAYS, disable_after=timedelta(hours=24), disable_failures=10)
READ_TIMEOUT, CONNECT_TIMEOUT = 10.0, 5.0  # seconds, the default httpx.Timeout of a call
DEADLINE = 30.0  # a whole call, however slowly the body drips in
BODY_KEPT = 1000  # characters of a response body kept in the log
LEASE = timedelta(seconds=120)  # longer than DEADLINE: a live call never loses its lease
STOP_GRACE = 10.0
KEEP_LOG = timedelta(days=30)  # how long a finished event and its delivery log are kept
PRUNE_EVERY = 600.0  # seconds between two prunes by one sender


def payload(claim: Claim) -> bytes:
    """The body of a call: `{"type", "timestamp", "data"}`, compact JSON."""
    body = {"type": claim.event_type, "timestamp": claim.event_at.isoformat(),
            "data": claim.event_data}  # fmt: skip
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


async def call(
    client: httpx.AsyncClient, url: str, *, msg_id: str, secret: str, body: bytes,
    allow_private: bool, deadline: float = DEADLINE,
) -> Outcome:  # fmt: skip
    """One signed POST to `url`, at an address checked just now; never raises."""
    import httpx

    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline):
            parsed = addresses.parse(url)
            address = (await addresses.checked_addresses(parsed, allow_private=allow_private))[0]
            stamp = int(time.time())
            headers = {
                "host": parsed.netloc.decode("ascii"),
                "content-type": "application/json",
                "user-agent": "Tidings-Webhooks/1",
                "webhook-id": msg_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": signing.sign(secret, msg_id, stamp, body),
            }
            # The connection goes to the checked address; Host and TLS (SNI and the
            # certificate check) still name the URL's host.
            extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
            pinned = parsed.copy_with(host=address)
            async with client.stream("POST", pinned, content=body, headers=headers,
                                     extensions=extensions) as response:  # fmt: skip
                kept = await _head(response)
            status = response.status_code
            error = None
            if 300 <= status < 400:
                error = f"redirect to {response.headers.get('location', '?')[:300]} not followed"
            elif not 200 <= status < 300:
                error = f"HTTP {status}"
            return Outcome(ok=error is None, status_code=status, body=kept, error=error,
                           duration_ms=_ms(started))  # fmt: skip
    except addresses.Refused as exc:
        return Outcome(ok=False, error=f"refused: {exc}"[:1000], duration_ms=_ms(started))
    except TimeoutError:
        return Outcome(ok=False, error=f"no answer within {deadline:g} s", duration_ms=_ms(started))
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        return Outcome(ok=False, error=error, duration_ms=_ms(started))
    except Exception as exc:  # noqa: BLE001 - an unknown outcome is a failure to retry
        error = f"{type(exc).__name__}: {exc}"[:1000]
        return Outcome(ok=False, error=error, duration_ms=_ms(started))


async def _head(response: httpx.Response) -> str:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= BODY_KEPT * 4:
            break
    return b"".join(chunks).decode("utf-8", "replace")[:BODY_KEPT]


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def make_client(
    timeout: httpx.Timeout | None = None, verify: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    """No keep-alive (a pooled connection would skip the address check), no proxies."""
    import httpx

    return httpx.AsyncClient(
        timeout=timeout or httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        follow_redirects=False, trust_env=False,
        verify=verify or ssl.create_default_context(),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
    )  # fmt: skip


class WebhookSender:
    """Calls every due webhook delivery until stop(); one per dispatcher process."""

    def __init__(
        self, *, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], owner: str,
        policy: Policy = POLICY, concurrency: int = 16, per_webhook: int = 4, poll: float = 0.5,
        stopping: asyncio.Event | None = None, timeout: httpx.Timeout | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:  # fmt: skip
        self.settings, self.sessionmaker, self.owner = settings, sessionmaker, owner
        self.policy, self.concurrency, self.per_webhook, self.poll = (
            policy, concurrency, per_webhook, poll)  # fmt: skip
        self.stopping = stopping or asyncio.Event()  # the dispatcher's: stops with it
        self.inflight: dict[asyncio.Task[None], int] = {}  # task -> webhook id
        self.freed = asyncio.Event()  # a call ended: its slot (and its webhook's) is free
        self.timeout = timeout
        self._client = client  # made at the first call (see the module's docstring)
        # SQLite has one writer: queued here, the calls' writes wait their turn in memory
        # instead of in SQLite's busy handler, which sleeps up to 100 ms per try.
        self.writes: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if settings.is_sqlite else contextlib.nullcontext()
        )
        self._task: asyncio.Task[None] | None = None
        self.next_prune = time.monotonic()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="tidings-webhooks")
        return self._task

    async def stop(self) -> None:
        """Stop claiming, let the calls in flight end (bounded), and return."""
        self.stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    busy = await self.turn()
                except Exception:
                    log.exception("webhook sender: will retry")
                    busy = False
                if not busy:
                    await self._pause()
        finally:
            if self.inflight:  # a call cut short leaves its lease to expire: sent again later
                _, late = await asyncio.wait(list(self.inflight), timeout=STOP_GRACE)
                for task in late:
                    task.cancel()
                await asyncio.gather(*self.inflight, return_exceptions=True)
            if self._client is not None:
                await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = make_client(self.timeout)
        return self._client

    async def _pause(self) -> None:
        # Until a call ends (a slot is free: claim at once) or `poll` passes (new work);
        # `freed` is cleared when a turn starts, so a call ending meanwhile is not missed.
        waits = [asyncio.ensure_future(self.stopping.wait()),
                 asyncio.ensure_future(self.freed.wait())]  # fmt: skip
        await asyncio.wait(waits, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()

    def _done(self, task: asyncio.Task[None]) -> None:
        self.inflight.pop(task, None)
        self.freed.set()

    async def turn(self) -> bool:
        """Fan out and claim once; True when there was work (so no pause before the next)."""
        self.freed.clear()
        async with self.writes:
            fanned = await outbox.fan_out(self.sessionmaker)
            if time.monotonic() >= self.next_prune:
                self.next_prune = time.monotonic() + PRUNE_EVERY
                await outbox.prune(self.sessionmaker, older_than=KEEP_LOG)
        free = self.concurrency - len(self.inflight)
        if free <= 0:
            await asyncio.wait(list(self.inflight), return_when=asyncio.FIRST_COMPLETED)
            return True
        busy: dict[int, int] = {}
        for webhook_id in self.inflight.values():
            busy[webhook_id] = busy.get(webhook_id, 0) + 1
        async with self.writes:
            claims = await outbox.claim(self.sessionmaker, owner=self.owner, limit=free,
                                        lease=LEASE, busy=busy,
                                        per_webhook=self.per_webhook)  # fmt: skip
        for claim in claims:
            task = asyncio.create_task(self._deliver(claim))
            self.inflight[task] = claim.webhook_id
            task.add_done_callback(self._done)
        return bool(fanned or claims)

    async def _deliver(self, claim: Claim) -> None:
        secret = signing.unseal(claim.secret_sealed, secret_key=self.settings.secret_key_value)
        outcome = await call(self.client, claim.url, msg_id=claim.event_id, secret=secret,
                             body=payload(claim),
                             allow_private=self.settings.webhook_allow_private)  # fmt: skip
        for pause in (0.5, 2.0, 5.0, None):  # the call happened: its log must be written
            try:
                async with self.writes:
                    await outbox.record(self.sessionmaker, owner=self.owner, claim=claim,
                                        outcome=outcome, policy=self.policy)  # fmt: skip
                return
            except Exception:
                if pause is None:
                    raise
                log.warning("webhook delivery %d: writing its result failed; retrying", claim.id)
                await asyncio.sleep(pause)
