"""Small helpers shared by the subscribers tests."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import AppClient, make_list  # noqa: F401 (the one list helper)
from tests.smtp import SMTPServer

CONFIRM_LINK = re.compile(r"http://tidings\.test/subscribe/confirm/([a-z0-9]+)")


async def add(client: AppClient, email: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/subscribers", json={"email": email, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def confirm_token(smtpd: SMTPServer, to: str) -> str:
    """The token of the confirm link in the last confirmation email sent to `to`."""
    mails = [m for m in smtpd.received if to in m.recipients]
    assert mails, f"no email to {to}"
    message = mails[-1].message
    text = message.get_body(preferencelist=("plain",)).get_content()
    match = CONFIRM_LINK.search(text)
    assert match, text
    return match.group(1)
