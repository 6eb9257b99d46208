"""Serve the app on loopback with one tracked link, for wrk against /r/{token}.

Run: python bench/engagement_redirect.py [port]   (prints the URL; Ctrl-C stops)
     wrk -t2 -c64 -d15s --latency http://127.0.0.1:PORT/r/TOKEN
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402

from app.config import Settings  # noqa: E402
from app.engagement import tokens  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrate import upgrade  # noqa: E402


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    var = Path(tempfile.mkdtemp(prefix="tidings-redirect-"))
    db = var / "tidings.db"
    upgrade(f"sqlite+aiosqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO issue_links (issue_id, idx, url) VALUES (1, 2, 'https://example.org/a')"
        )
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", var_dir=var, secret_key="k" * 40,
                        embedded_worker=False, admin_token="x" * 32)  # fmt: skip
    token = tokens.make(settings.secret_key_value, "click", 1, 12345, 2)
    print(f"http://127.0.0.1:{port}/r/{token}", flush=True)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_level="warning", access_log=False)  # fmt: skip
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
