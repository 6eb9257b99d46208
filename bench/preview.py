"""The `preview` part: the editor's preview latency while typing, on SQLite and PostgreSQL.

The measurement itself is `bench/preview_latency.py` (the console's): the seed-sized issue
(bench/user_path.py's newsletter, about 40 KB as sent) edited one word at a time as
editor.js does it (check, autosave, then preview.json), the app served in this process
over ASGI. This part runs it on a fresh SQLite database and on a fresh PostgreSQL one and
holds the preview's p95 to issue 12's target, 200 ms.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.infra import create_pg_database, drop_pg_database
from bench.report import Results, Row
from bench.seed import migrate


async def measure_preview(results: Results, *, edits: int, postgres: bool) -> dict[str, Any]:
    """p95 of the preview after each edit (and of the whole cycle), per database."""
    from app.config import Settings
    from bench import preview_latency

    figures: dict[str, Any] = {"sqlite": await preview_latency.measure(None, n=edits)}
    if postgres:
        url = await create_pg_database()
        try:
            await migrate(url)
            with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
                settings = Settings(
                    database_url=url,
                    var_dir=Path(tmp),
                    embedded_worker=False,
                    secret_key="bench-secret-key-" + "x" * 32,
                    public_url="https://news.example.org",
                    smtp_url="smtp://127.0.0.1:9",
                )
                figures["postgres"] = await preview_latency.measure(settings, n=edits)
        finally:
            await drop_pg_database(url)
    for backend, f in figures.items():
        kb = f["html_bytes"] / 1024
        results.add(
            Row(
                "preview",
                f"preview.json while typing ({backend})",
                f["preview"]["p95_ms"],
                "ms p95",
                "< 200",
                f["preview"]["p95_ms"] < 200,
                f"p50 {f['preview']['p50_ms']} ms, max {f['preview']['max_ms']} ms;"
                f" {f['n']} edits, HTML {kb:.1f} KB; check + autosave + preview"
                f" p95 {f['cycle']['p95_ms']} ms",
            )
        )
    results.raw["preview"] = figures
    return figures
