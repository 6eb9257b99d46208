"""The dashboard: list history from kept snapshots, issue figures, the complaint warning."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta

from sqlalchemy import select

from app.accounts.models import ListCountSnapshot
from app.models import Delivery, Issue
from tests.conftest import AppClient
from tests.console.conftest import ConsoleClient
from tests.subscribers.helpers import add, make_list


async def test_dashboard_draws_lists_issues_rates_and_setup(
    console_as: Callable[[str], Awaitable[ConsoleClient]], client: AppClient
) -> None:
    await make_list(client, "news", name="News <b>&</b> views")
    for i in range(3):
        await add(client, f"p{i}@example.org", lists=["news"])
    viewer = await console_as("viewer")
    async with viewer.app.state.sessionmaker() as s:
        issue = Issue(subject="October <script>", body="x", status="sent", recipients=400)
        s.add(issue)
        await s.flush()
        s.add_all(
            [Delivery(issue_id=issue.id, subscriber_id=None, status="sent") for _ in range(396)]
        )
        for _ in range(2):
            s.add(Delivery(issue_id=issue.id, subscriber_id=None, status="complained"))
        await s.commit()
    viewer.app.state.dashboard_cache.clear()  # figures are kept a minute; this test cannot wait
    r = await viewer.get("/admin")
    assert r.status_code == 200
    html = r.text
    assert "<svg" in html and "News &lt;b&gt;&amp;&lt;/b&gt; views: 3" in html
    assert "October &lt;script&gt;" in html and "<script>" not in html.split("</footer>")[0]
    assert "above 0.3%" in html and 'role="alert"' in html  # 2 of 398 = 0.50%
    assert "SMTP server answering" in html and "Public URL reachable" in html
    async with viewer.app.state.sessionmaker() as s:
        kept = list(await s.scalars(select(ListCountSnapshot)))
        assert [(k.day, k.confirmed) for k in kept] == [(date.today(), 3)]
        # Yesterday's row makes a line of two points.
        s.add(
            ListCountSnapshot(
                list_id=kept[0].list_id, day=date.today() - timedelta(days=1),
                confirmed=1, pending=0, unsubscribed=0,
            )
        )  # fmt: skip
        await s.commit()
    html = (await viewer.get("/admin")).text
    assert (date.today() - timedelta(days=1)).isoformat() in html
