"""The table of memberships.next_status: who may move a membership where."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.subscribers.memberships import OptedOut, next_status, stamps


@pytest.mark.parametrize(
    ("current", "wanted", "actor", "becomes"),
    [
        (None, "confirmed", "public", "confirmed"),
        (None, "pending", "public", "pending"),
        ("pending", "confirmed", "person", "confirmed"),
        ("confirmed", "pending", "public", None),  # a new sign-up never demotes her
        ("confirmed", "confirmed", "import", None),
        ("confirmed", "unsubscribed", "person", "unsubscribed"),
        ("unsubscribed", "confirmed", "person", "confirmed"),  # her own link brings her back
        ("unsubscribed", "confirmed", "public", "pending"),  # anyone else: her inbox decides
        ("unsubscribed", "pending", "public", "pending"),
        ("pending", "confirmed", "public", None),  # waits for her inbox, even on single opt-in
        ("confirmed", "pending", "admin", "pending"),
    ],
)
def test_next_status(current: str | None, wanted: str, actor: str, becomes: str | None) -> None:
    assert next_status(current, wanted, actor=actor) == becomes  # type: ignore[arg-type]


@pytest.mark.parametrize("actor", ["admin", "import"])
def test_only_she_undoes_her_opt_out(actor: str) -> None:
    with pytest.raises(OptedOut):
        next_status("unsubscribed", "confirmed", actor=actor)  # type: ignore[arg-type]


def test_confirming_clears_the_opt_out_time() -> None:
    now = datetime.now(UTC)
    assert stamps("confirmed", now) == {
        "status": "confirmed",
        "confirmed_at": now,
        "unsubscribed_at": None,
    }
    assert stamps("unsubscribed", now) == {"status": "unsubscribed", "unsubscribed_at": now}
