"""The dispatcher's feeder: claim, re-check, render, sign, and queue for the senders.

One feeder coroutine per dispatcher, round-robin over the issues being sent:

    claim a batch (one UPDATE … RETURNING under a lease)
      └─ per chunk of CHUNK: rate tokens, re-check who may still be sent to (one query),
         render each message, DKIM-sign the chunk, then queue each message for a sender.

The re-check happens per chunk, just before its messages are rendered, so an address
unsubscribed or blocklisted after the send started is skipped (contract: "checked again
just before each message goes"); a chunk is at most a few hundred milliseconds of sending.
Signing runs beside the feeder (signing.py), several chunks at once, so the senders never
wait for one chunk's signatures while the cores have work to give.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import selectinload

from app.delivery import queue, ratelimit
from app.delivery.queue import Result, Target
from app.delivery.signing import SignAgain
from app.delivery.transport import Envelope, Transport, pick_weighted
from app.engagement import links as engagement_links
from app.issues import compose
from app.models import Issue

if TYPE_CHECKING:
    from app.delivery.dispatcher import Dispatcher

log = logging.getLogger("tidings.dispatcher")

CHUNK = 50  # deliveries re-checked (unsubscribed? blocklisted?) in one query, just before sending


@dataclass(frozen=True, slots=True)
class Item:
    """One message ready for a sender."""

    id: int
    issue_id: int
    attempts: int
    transport: Transport
    envelope: Envelope
    message_id: str


def claim_size(d: Dispatcher) -> int:
    if all(b.rate > 0 for b in d.budgets.values()):
        # Under a rate limit, hold no more than ~2 s of work: pause and take-over stay cheap.
        rate = sum(b.rate for b in d.budgets.values())
        return max(1, min(d.settings.batch_size, math.ceil(2 * rate)))
    return d.settings.batch_size


async def feed_loop(d: Dispatcher) -> None:
    """Feed the senders until the dispatcher stops; an error is logged and retried."""
    idle = 0
    while not d.stopping.is_set():
        try:
            busy = await feed_once(d)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("feeder: will retry")
            await ratelimit._sleep(1.0, d.stopping)
            continue
        idle = 0 if busy else idle + 1
        sending = sum(1 for s in d.status.values() if s == "sending")
        if idle > max(1, sending):
            d.wake.clear()
            await ratelimit._sleep(0.25, d.wake)  # the control tick wakes us for a new send
            idle = 0


async def feed_once(d: Dispatcher) -> bool:
    issues = sorted(i for i, s in d.status.items() if s == "sending")
    if not issues:
        return False
    issue_id = issues[d.turn % len(issues)]
    d.turn += 1
    buf = d.buffer.setdefault(issue_id, deque())
    if not buf:
        # Shielded: a stop that cancels the feeder mid-claim must still learn what the
        # claim took (it may have committed), so that it is released, not left to expire.
        d.claiming = asyncio.ensure_future(_claim(d, issue_id))
        ids = await asyncio.shield(d.claiming)
        buf.extend(ids)
        if not ids:
            return False
    transport = _pick(d)
    granted = await d.budgets[transport.name].take(min(CHUNK, len(buf)), d.stopping)
    if not granted or d.status.get(issue_id) != "sending":
        return True
    ids = [buf.popleft() for _ in range(min(granted, len(buf)))]
    await prepare(d, issue_id, ids, transport)
    return True


async def _claim(d: Dispatcher, issue_id: int) -> list[int]:
    async with d.sessionmaker() as s, s.begin():
        ids = await queue.claim(session=s, issue_id=issue_id, owner=d.owner,
                                limit=claim_size(d),
                                lease_seconds=d.settings.lease_seconds)  # fmt: skip
    for i in ids:
        d.held[i] = issue_id
    return ids


def _pick(d: Dispatcher) -> Transport:
    now = time.time()
    blocked = {n for n, b in d.budgets.items() if b.blocked_local > now}
    return pick_weighted(d.transports, blocked)


def precompile(d: Dispatcher, issue_id: int) -> None:
    """Start compiling an issue (once per dispatcher); `_compiled` awaits the same task."""
    if issue_id not in d.compiled:
        d.compiled[issue_id] = asyncio.ensure_future(_compile(d, issue_id))


async def _compile(d: Dispatcher, issue_id: int) -> Any:
    async with d.sessionmaker() as s:
        issue = await s.scalar(
            select(Issue).where(Issue.id == issue_id).options(selectinload(Issue.lists))
        )
    assert issue is not None
    compiled = await asyncio.to_thread(compose.compile_for_send, d.settings, issue)
    if compiled.tracking is not None:
        # The redirect reads its targets from this table: it is written before any message.
        async with d.sessionmaker() as s, s.begin():
            await engagement_links.store(s, issue_id, compiled.tracking.links())
    return compiled


async def _compiled(d: Dispatcher, issue_id: int) -> Any:
    precompile(d, issue_id)
    try:
        return await d.compiled[issue_id]
    except Exception:
        d.compiled.pop(issue_id, None)  # the next chunk tries again (after a pause: a resume)
        raise


async def prepare(d: Dispatcher, issue_id: int, ids: list[int], transport: Transport) -> None:
    """Re-check, render and (through signing) queue one chunk of claimed deliveries."""
    try:
        compiled = await _compiled(d, issue_id)
        async with d.sessionmaker() as s:
            targets = await queue.load_targets(session=s, ids=ids)
    except (SQLAlchemyError, OSError):
        # The database is away: these stay ours and wait at the head of the buffer (a
        # claimed delivery that is in no buffer and no queue would never be sent).
        if d.status.get(issue_id) == "sending":
            d.buffer.setdefault(issue_id, deque()).extendleft(reversed(ids))
        else:
            for i in ids:
                d.release(i)
        raise
    except Exception as exc:  # a body that cannot render: stop the issue, never crash
        log.exception("issue %s cannot be rendered", issue_id)
        d.pause(issue_id, f"rendering failed: {exc}")
        for i in ids:
            d.release(i)
        return
    found = {t.id for t in targets}
    for i in ids:
        if i not in found:  # the delivery row is gone (issue deleted): nothing to send
            d.held.pop(i, None)
    items: list[tuple[Target, str, str]] = []
    datas: list[bytes] = []
    settings, from_addr = d.settings, compiled.content.from_addr
    for t in targets:
        if not t.eligible:
            d.emit(Result(t.id, "skipped", refund=1, error="unsubscribed or blocklisted"))
            continue
        r = compose.recipient(settings, issue_id=issue_id, delivery_id=t.id,
                              subscriber_id=t.subscriber_id, email=t.email, name=t.name,
                              attributes=t.attributes)  # fmt: skip
        datas.append(compiled.render_message(r))
        items.append((t, compose.envelope_sender(settings, r, from_addr=from_addr), r.message_id))
    if d.signer is None or not items:
        await _queue(d, issue_id, transport, items, datas)
        return
    # The chunk is signed in a task of its own while the feeder renders the next one; the
    # feeder waits only when MAX_IN_FLIGHT chunks are between it and the send queue.
    await d.sign_slots.acquire()
    task = asyncio.create_task(_sign_then_queue(d, issue_id, transport, items, datas))
    d.signing.add(task)
    task.add_done_callback(d.signing.discard)


async def _sign_then_queue(
    d: Dispatcher, issue_id: int, transport: Transport, items: list[Any], datas: list[bytes]
) -> None:
    assert d.signer is not None
    try:
        signed = await d.signer.sign(datas)
        await _queue(d, issue_id, transport, items, signed)
    except SignAgain:  # a signing process died and the pool was restarted
        log.warning(
            "the DKIM signing pool broke and was restarted; %d back in the queue", len(items)
        )
        for t, _, _ in items:
            d.release(t.id)
    except Exception as exc:  # a key that cannot sign: stop the issue rather than loop on it
        log.exception("DKIM signing failed for issue %s", issue_id)
        d.pause(issue_id, f"DKIM signing failed: {exc}")
        for t, _, _ in items:
            d.release(t.id)
    finally:
        d.sign_slots.release()


async def _queue(
    d: Dispatcher, issue_id: int, transport: Transport, items: list[Any], datas: list[bytes]
) -> None:
    put = d.sendq.put
    for (t, sender, mid), data in zip(items, datas, strict=True):
        # crlf: the renderer and the signer write CRLF only, so SMTP need not check again.
        envelope = Envelope(sender, (t.email,), data, crlf=True)
        await put(Item(t.id, issue_id, t.attempts, transport, envelope, mid))
