"""Each test starts with empty tables, so no process memory of an earlier test's webhooks."""

from __future__ import annotations

import pytest

from app.webhooks import events


@pytest.fixture(autouse=True)
def _forget_subscriptions() -> None:
    events.forget_subscriptions()


from tests.console.conftest import console_as, console_client  # noqa: E402, F401 (fixtures)
