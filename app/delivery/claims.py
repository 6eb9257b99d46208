"""The deliveries this dispatcher holds under its lease, and their results not yet written.

Why one owner for both: the promise that nothing is lost rests on one rule, "every
claimed delivery stays held until a result for it is written". A claim enters through
claimed(); it leaves only through emit() (a result: sent, failed, retry, released,
skipped), which moves it into the results the writer takes. So whatever stops a
message on its way (a pause, a cancel, SIGTERM, a sender cancelled after the grace
period), releasing what is still held gives every unsent claim back to the queue, and a
crash leaves only leases that expire. emit() is idempotent: a second result for the same
delivery (a release racing a send) is dropped, never written over the first.

Who may change what: the feeder adds claims and takes ids to prepare from `waiting`;
the senders, the feeder and the signing tasks emit results; the writer takes the
results (and puts them back when a write fails). All run on one event loop and no method
awaits, so each change is whole when another part looks.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque

from app.delivery.board import Board
from app.delivery.queue import Result

FLUSH_AT = 50  # results that make the writer write at once instead of within 0.1 s


class Claims:
    """Held claims (delivery id -> issue id), those waiting to be prepared, and results."""

    def __init__(self, board: Board) -> None:
        self._board = board
        self._held: dict[int, int] = {}
        self._waiting: dict[int, deque[int]] = {}  # claimed, not yet prepared, per issue
        self._results: list[Result] = []
        self._counted: Counter[str] = Counter()  # results not yet added to the metrics
        self.flush_now = asyncio.Event()  # set when FLUSH_AT results wait to be written

    # -- what we hold -------------------------------------------------------------------

    def claimed(self, issue_id: int, ids: list[int]) -> None:
        for delivery_id in ids:
            self._held[delivery_id] = issue_id
        self._waiting.setdefault(issue_id, deque()).extend(ids)

    def waiting(self, issue_id: int) -> int:
        return len(self._waiting.get(issue_id, ()))

    def take_waiting(self, issue_id: int, n: int) -> list[int]:
        buf = self._waiting.get(issue_id, deque())
        return [buf.popleft() for _ in range(min(n, len(buf)))]

    def wait_again(self, issue_id: int, ids: list[int]) -> None:
        """Put ids back at the head of the issue's waiting line (the database was away)."""
        self._waiting.setdefault(issue_id, deque()).extendleft(reversed(ids))

    def holds_any(self) -> bool:
        return bool(self._held)

    def issues(self) -> set[int]:
        return set(self._held.values())

    def forget(self, delivery_id: int) -> None:
        """The delivery row is gone (its issue was deleted): there is nothing to write."""
        self._held.pop(delivery_id, None)

    # -- results ------------------------------------------------------------------------

    def emit(self, result: Result) -> None:
        if self._held.pop(result.id, None) is None:
            return  # already given a result (or never ours)
        self._results.append(result)
        if len(self._results) >= FLUSH_AT:
            self.flush_now.set()
        status = result.status
        if status == "queued":
            status = "released" if result.refund else "retry"
        self._counted[status] += 1  # added to the metrics with the next write, not per message

    def release(self, delivery_id: int) -> None:
        """Give one claim back unsent: to the queue, or cancelled with its issue."""
        issue_id = self._held.get(delivery_id, 0)
        status = "cancelled" if self._board.status(issue_id) == "cancelled" else "queued"
        self.emit(Result(delivery_id, status, refund=1))

    def release_issue(self, issue_id: int) -> None:
        """Give back at once what we claimed of an issue that left 'sending' and is waiting."""
        for delivery_id in self._waiting.pop(issue_id, deque()):
            self.release(delivery_id)

    def release_all(self) -> None:
        for delivery_id in list(self._held):
            self.release(delivery_id)

    def pause(self, issue_id: int, reason: str) -> None:
        """Pause an issue (written by the writer) and give back what waits of it."""
        if self._board.pause(issue_id, reason):
            self.release_issue(issue_id)

    def nudge(self) -> None:
        """Wake the writer now (it waits on flush_now between writes)."""
        self.flush_now.set()

    def has_results(self) -> bool:
        return bool(self._results)

    def take_results(self) -> list[Result]:
        results, self._results = self._results, []
        return results

    def restore(self, results: list[Result]) -> None:
        """A write failed: its results go back first in line (writing one twice is harmless)."""
        self._results[:0] = results

    def take_counts(self) -> Counter[str]:
        counted, self._counted = self._counted, Counter()
        return counted
