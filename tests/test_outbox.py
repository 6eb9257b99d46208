"""`tidings outbox`: the tour's confirmation link, read from a real outbox file, works whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.outbox import newest
from tests.conftest import make_list


async def test_the_confirmation_link_from_the_outbox_confirms(
    app_factory: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "outbox"
    client = await app_factory(smtp_url=f"outbox://{folder}", public_url="http://tidings.test")
    await make_list(client, "weekly", double_opt_in=True)
    r = await client.post(
        "/api/v1/subscribe", json={"email": "ann@example.org", "lists": ["weekly"]}
    )
    assert r.status_code == 202, r.text
    [message] = newest(folder)
    assert message.to.endswith("ann@example.org") or "ann@example.org" in message.to
    [link] = [u for u in message.links if "/subscribe/confirm/" in u]
    confirmed = await client.post(link.removeprefix("http://tidings.test"))
    assert confirmed.status_code == 200
    member = (await client.get("/api/v1/subscribers", params={"q": "ann@"})).json()["items"][0]
    assert member["lists"] == [{"slug": "weekly", "status": "confirmed"}]


def test_the_command_prints_links_whole(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "outbox"
    folder.mkdir(parents=True)
    long_link = "http://127.0.0.1:8000/subscribe/confirm/" + "a" * 90
    (folder / "1.eml").write_bytes(
        b"To: Ann <ann@example.org>\r\nSubject: Please confirm\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + b"Confirm: "
        + long_link[:60].encode()
        + b"=\r\n"
        + long_link[60:].encode()
        + b"\r\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env["TIDINGS_VAR_DIR"] = str(tmp_path / "var")
    out = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "outbox"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "Subject: Please confirm" in out.stdout
    assert f"  {long_link}\n" in out.stdout
