"""The issues this dispatcher is working on, and what it believes their status is.

Owned by the control loop: it alone replaces the statuses, once a tick (0.1 s), from the
database. Any part may read them. A pause we decide ourselves (too many failures, the
guardrail, a body that cannot render) takes hold here at once, before it is written: the
senders and the feeder stop on the issue at their next look, and the control tick keeps
it paused while the database still says 'sending'. The writer removes a pause from
`pending` only once lifecycle.pause is committed, so a failed write is retried.

Transactional messages (the system issue, models.MESSAGES_ISSUE) are always open here:
their deliveries are sent whatever the tick read, and never paused or finished (the
issue's row says 'system'; a message's failure is that message's alone).

Everything here runs on the dispatcher's one event loop: each method runs to its end
with no await, so no lock is needed and no reader sees half an update.
"""

from __future__ import annotations

from app.models import MESSAGES_ISSUE


class Board:
    """Issue statuses as last read (plus our own unwritten pauses), and those pauses."""

    def __init__(self) -> None:
        self._status: dict[int, str] = {}
        self._pauses: dict[int, str] = {}  # issue id -> reason, until written

    def status(self, issue_id: int) -> str | None:
        if issue_id == MESSAGES_ISSUE:
            return "sending"
        return self._status.get(issue_id)

    def sending(self) -> list[int]:
        """The issues being sent, in id order (the feeder's round-robin)."""
        return sorted(i for i, s in self._status.items() if s == "sending")

    def known(self) -> set[int]:
        return set(self._status)

    def replace(self, statuses: dict[int, str]) -> dict[int, str]:
        """Take a tick's statuses (our unwritten pauses win); return the previous ones."""
        statuses.pop(MESSAGES_ISSUE, None)  # read because we hold messages: always open
        for issue_id in self._pauses:  # the database lags behind us
            statuses[issue_id] = "paused"
        previous, self._status = self._status, statuses
        return previous

    def pause(self, issue_id: int, reason: str) -> bool:
        """Pause a sending issue here and now; True when it was sending (its claims go back)."""
        if self._status.get(issue_id) != "sending":
            return False
        self._status[issue_id] = "paused"
        self._pauses[issue_id] = reason
        return True

    def pending(self) -> dict[int, str]:
        """Our pauses not yet written (a copy: the writer writes, then calls written())."""
        return dict(self._pauses)

    def written(self, issue_ids: list[int]) -> None:
        for issue_id in issue_ids:
            self._pauses.pop(issue_id, None)
