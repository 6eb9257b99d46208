"""`tidings import FILE --list SLUG` in a real subprocess against the test database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.conftest import AppClient
from tests.subscribers.helpers import make_list

ROOT = Path(__file__).resolve().parents[2]


async def tidings(db: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": db,
        "TIDINGS_VAR_DIR": str(tmp_path / "cli-var"),
        "COLUMNS": "120",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from app.cli import main; main()", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode()


async def test_cli_import_and_reimport(client: AppClient, db: str, tmp_path: Path) -> None:
    await make_list(client, "news")
    csv_file = tmp_path / "people.csv"
    rows = [f"user{i}@example.com,User {i},{i % 7}" for i in range(3000)]
    csv_file.write_text("email,name,group\n" + "\n".join(rows) + "\nbroken,,\n")

    code, out = await tidings(db, tmp_path, "import", str(csv_file), "--list", "news")
    assert code == 0, out
    assert "created 3000, updated 0, skipped 0, errors 1" in out
    assert "line 3002" in out
    counts = (await client.get("/api/v1/lists/news")).json()["counts"]
    assert counts["confirmed"] == 3000

    code, out = await tidings(db, tmp_path, "import", str(csv_file), "--list", "news")
    assert code == 0 and "created 0, updated 0, skipped 3000" in out, out


async def test_cli_import_failures(client: AppClient, db: str, tmp_path: Path) -> None:
    await make_list(client, "news")
    good = tmp_path / "good.csv"
    good.write_text("email\na@example.com\n")
    code, out = await tidings(db, tmp_path, "import", str(good), "--list", "nope")
    assert code == 1 and "no list" in out
    no_email = tmp_path / "no_email.csv"
    no_email.write_text("name\nAnn\n")
    code, out = await tidings(db, tmp_path, "import", str(no_email), "--list", "news")
    assert code == 1 and "email" in out
    assert (await client.get("/api/v1/subscribers")).json()["items"] == []
