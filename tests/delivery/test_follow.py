"""`tidings send`: the CLI reads the service's domain errors, with no FastAPI in between."""

from __future__ import annotations

import pytest

from app.delivery.follow import send_cli
from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list, set_issue


async def test_send_refusals_are_reported_and_exit_1(
    client: AppClient, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = client.app.state.settings
    assert await send_cli(settings, 99999, follow=False) == 1
    assert "cannot send issue 99999: issue 99999 not found" in capsys.readouterr().out
    await make_list(client, "news")
    issue = await make_issue(client)
    await set_issue(client, issue["id"], status="sent")
    assert await send_cli(settings, issue["id"], follow=False) == 1
    assert "cannot send an issue that is sent" in capsys.readouterr().out
    # With --follow, a 409 (already started or finished) follows the issue to its end.
    assert await send_cli(settings, issue["id"], follow=True) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"issue {issue['id']}: sent")
