"""The guardrail: a send into a server refusing 6% of recipients as unknown pauses itself."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from app.engagement import guardrail
from app.models import Subscriber, Subscription
from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list
from tests.smtp import Received, SMTPServer

RECIPIENTS = 2000


def test_the_rates_and_the_threshold(make_settings: Any) -> None:
    settings = make_settings()
    assert guardrail.judge(settings, {"sent": 900, "bounced": 99}) is None  # < 1,000 messages
    assert guardrail.judge(settings, {"sent": 950, "bounced": 50}) is None  # 5.0%: not over
    reason = guardrail.judge(settings, {"sent": 949, "bounced": 51})
    assert reason is not None and "hard-bounce rate 5.10%" in reason
    reason = guardrail.judge(settings, {"sent": 996, "complained": 4})
    assert reason is not None and "complaint rate 0.40%" in reason
    looser = make_settings(pause_complaint_rate=0.01)
    assert guardrail.judge(looser, {"sent": 996, "complained": 4}) is None


async def _members(client: AppClient, count: int) -> None:
    list_id = await make_list(client, "news")
    async with client.app.state.sessionmaker() as s, s.begin():
        people = [Subscriber(email=f"r{n:05d}@example.org", email_key=f"r{n:05d}@example.org",
                             name="", attributes={}) for n in range(count)]  # fmt: skip
        s.add_all(people)
        await s.flush()
        s.add_all(
            Subscription(subscriber_id=p.id, list_id=list_id, status="confirmed") for p in people
        )


@pytest.mark.slow
async def test_a_send_with_six_percent_unknown_users_pauses_with_the_reason(
    app_factory: Any, smtpd: SMTPServer
) -> None:
    def reply(item: Received) -> str:
        time.sleep(0.004)  # ~250 messages/s, so the check meets the send halfway
        number = int(item.recipients[0][1:6])
        refused = f"550 5.1.1 <{item.recipients[0]}>: no such user"
        return refused if number % 50 < 3 else "250 OK"

    smtpd.reply = reply
    client = await app_factory(embedded_worker=True)
    await _members(client, RECIPIENTS)
    issue = await make_issue(client)
    assert (await client.post(f"/api/v1/issues/{issue['id']}/send")).status_code == 202
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        shown = (await client.get(f"/api/v1/issues/{issue['id']}")).json()
        if shown["status"] != "sending":
            break
        await asyncio.sleep(0.25)
    assert shown["status"] == "paused", shown
    # The rate of the first ~1,000 outcomes: near 6%, over the 5% bound.
    pattern = r"guardrail: hard-bounce rate (\d+\.\d\d)% over 5\.00% after (\d+) messages"
    found = re.fullmatch(pattern, shown["status_reason"])
    assert found is not None, shown["status_reason"]
    assert 5.0 < float(found[1]) < 7.5 and int(found[2]) >= 1000
    stats = (await client.get(f"/api/v1/issues/{issue['id']}/stats")).json()
    assert 1000 <= stats["sent"] + stats["bounced"] < RECIPIENTS
    assert stats["bounce_rate"] > 0.05
