"""The editor's preview while typing: how long the answer takes after each small change.

editor.js, 700 ms after the last key, posts the form to /autosave (with the version
check; it answers 422 with the problems if the issue does not compile), then gets
/preview.json. This does the same n times on the seed-sized issue (the newsletter of
bench/user_path.py, about 40 KB as sent), each time with one more word in the body, and
reports p50/p95 in ms of the preview alone, of the whole cycle, and of a second preview of
the same version for another reader (what switching the reader does).
The target of issue 12 is a preview under 200 ms p95.

Run alone: python -m bench.preview_latency [n]. `measure(None)` builds an app of its own
on a fresh SQLite database in a temp directory; `measure(settings)` one on those Settings
(e.g. a PostgreSQL database_url, already migrated). The app is served in process over
ASGI: no socket, so the figures are the server's work.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.accounts import service as accounts
from app.config import Settings
from app.main import create_app
from app.migrate import upgrade
from app.models import MailingList
from bench.user_path import newsletter

EMAIL, PASSWORD = "bench-editor@example.org", "correct horse battery staple"
TOKEN = "bench-admin-token-" + "x" * 24
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_VERSION = re.compile(r'name="version" value="([^"]*)"')


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "max_ms": round(ordered[-1], 1)}


async def _loop(app: Any, n: int) -> dict[str, Any]:
    async with app.state.sessionmaker() as session:
        await accounts.create_account(session=session, email=EMAIL, role="editor",
                                      password=PASSWORD)  # fmt: skip
        session.add(MailingList(slug="bench-preview", name="Bench preview", description=""))
        await session.commit()
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    base = app.state.settings.public_url.rstrip("/")  # its cookies are Secure when https
    async with httpx.AsyncClient(transport=transport, base_url=base) as c:
        body = newsletter()
        made = await c.post("/api/v1/issues", headers={"Authorization": f"Bearer {TOKEN}"},
                            json={"subject": "Winter edition", "lists": ["bench-preview"],
                                  "body": body})  # fmt: skip
        assert made.status_code == 201, made.text
        issue_id = made.json()["id"]
        login = await c.get("/admin/login")
        signed = await c.post("/admin/login", data={"email": EMAIL, "password": PASSWORD,
                                                    "csrf_token": _CSRF.search(login.text)[1]})  # type: ignore[index]  # fmt: skip
        assert signed.status_code == 303, signed.text
        page = await c.get(f"/admin/issues/{issue_id}")
        csrf, version = _CSRF.search(page.text)[1], _VERSION.search(page.text)[1]  # type: ignore[index]
        headers = {"X-CSRF-Token": csrf}
        form = {"subject": "Winter edition", "preheader": "", "from": "", "template": "newsletter",
                "lists": ["bench-preview"], "format": "markdown"}  # fmt: skip
        preview_ms: list[float] = []
        cycle_ms: list[float] = []
        repeat_ms: list[float] = []
        first = await c.get(f"/admin/issues/{issue_id}/preview.json")  # as the page loads
        assert first.status_code == 200, first.text
        for i in range(n):
            body += f" word{i}"
            data = form | {"body": body, "version": version}
            start = time.perf_counter()
            saved = await c.post(f"/admin/issues/{issue_id}/autosave", data=data, headers=headers)
            assert saved.status_code == 200, saved.text
            version = saved.json()["version"]
            asked = time.perf_counter()
            preview = await c.get(f"/admin/issues/{issue_id}/preview.json?sample=named")
            done = time.perf_counter()
            assert preview.status_code == 200 and f"word{i}" in preview.json()["html"]
            preview_ms.append((done - asked) * 1000)
            cycle_ms.append((done - start) * 1000)
            again = time.perf_counter()  # the same version for another reader: no compile
            other = await c.get(f"/admin/issues/{issue_id}/preview.json?sample=nameless")
            assert other.status_code == 200
            repeat_ms.append((time.perf_counter() - again) * 1000)
        return {"n": n, "html_bytes": preview.json()["bytes"], "body_bytes": len(body.encode()),
                "preview": _percentiles(preview_ms), "cycle": _percentiles(cycle_ms),
                "same_version_other_reader": _percentiles(repeat_ms)}  # fmt: skip


async def measure(settings: Settings | None = None, *, n: int = 40) -> dict[str, Any]:
    """p50/p95/max ms of the preview after each autosave, and of autosave+preview.

    `settings`: the app to measure (its database migrated); None: a fresh SQLite one.
    """
    with tempfile.TemporaryDirectory(prefix="tidings-preview-") as tmp:
        if settings is None:
            url = f"sqlite+aiosqlite:///{tmp}/tidings.db"
            await asyncio.to_thread(upgrade, url)
            settings = Settings(database_url=url, var_dir=Path(tmp) / "var", admin_token=TOKEN,
                                secret_key="bench-secret-key-" + "x" * 32,
                                public_url="https://news.example.org", embedded_worker=False,
                                smtp_url="smtp://127.0.0.1:9")  # fmt: skip
        else:
            settings = settings.model_copy(update={"admin_token": TOKEN})
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            return await _loop(app, n)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(n=int(sys.argv[1]) if len(sys.argv) > 1 else 40)),
                     indent=2))  # fmt: skip
