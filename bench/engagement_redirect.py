"""Serve the app on loopback with tracked links of many deliveries, for wrk against /r/{token}.

Run: python bench/engagement_redirect.py [port] [--routed] [--mode aggregate|individual|off]
     wrk -t2 -c64 -d15s --latency -s WRK_SCRIPT http://127.0.0.1:PORT

It prints the wrk script (each request a token of another of DELIVERIES deliveries and
another link, so every hit is new to the recorder and a flush writes real rollups,
uniques and, in individual mode, events) and one URL for a single-token run.
`--routed` serves /r/ through the whole middleware stack and the router, as an app
without engagement.endpoints.FastPath does; by default FastPath is installed (create_app
puts it in once app/main.py has its line; here it is added if it is not there).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402

from app.config import Settings  # noqa: E402
from app.engagement import endpoints, tokens  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.web.server import uvicorn_options  # noqa: E402

DELIVERIES = 20_000
LINKS = 8  # indexes 2..9
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari"


def _seed(db: Path) -> None:
    now = "datetime('now', '-1 hour')"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO issues (id, subject, preheader, template, format, body, status,"
            " recipients, created_at, updated_at) VALUES (1, 's', '', 'newsletter', 'markdown',"
            f" 'b', 'sent', {DELIVERIES}, {now}, {now})"
        )
        conn.executemany(
            "INSERT INTO issue_links (issue_id, idx, url) VALUES (1, ?, ?)",
            [(i, f"https://example.org/{i}") for i in range(2, 2 + LINKS)],
        )
        conn.executemany(
            "INSERT INTO subscribers (id, email, email_key, attributes, status, created_at,"
            f" updated_at) VALUES (?, ?, ?, '{{}}', 'active', {now}, {now})",
            [(i, f"r{i}@example.org", f"r{i}@example.org") for i in range(1, DELIVERIES + 1)],
        )
        conn.executemany(
            "INSERT INTO deliveries (id, issue_id, subscriber_id, status, attempts, sent_at)"
            f" VALUES (?, 1, ?, 'sent', 1, {now})",
            [(i, i) for i in range(1, DELIVERIES + 1)],
        )


def _wrk_script(var: Path, secret: str) -> Path:
    paths = [f"/r/{tokens.make(secret, 'click', 1, d, 2 + d % LINKS)}"
             for d in range(1, DELIVERIES + 1)]  # fmt: skip
    script = var / "tokens.lua"
    script.write_text(
        "local paths = {\n" + ",\n".join(f'"{p}"' for p in paths) + "\n}\n"
        "local i = 0\n"
        f'wrk.headers["User-Agent"] = "{UA}"\n'
        "request = function()\n  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\nend\n'
    )
    return script


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int, nargs="?", default=8765)
    parser.add_argument("--routed", action="store_true", help="no FastPath: the whole stack")
    parser.add_argument("--mode", default="aggregate", choices=["off", "aggregate", "individual"])
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="tidings-redirect-"))
    db = var / "tidings.db"
    upgrade(f"sqlite+aiosqlite:///{db}")
    _seed(db)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{db}", var_dir=var, secret_key="k" * 40,
                        embedded_worker=False, admin_token="x" * 32,
                        tracking=args.mode)  # fmt: skip
    app = create_app(settings)
    lean = getattr(endpoints, "FastPath", None)  # None: a checkout from before it existed
    fast = any(m.cls is lean for m in app.user_middleware)
    if args.routed and fast:
        sys.exit("create_app already installs FastPath: --routed cannot measure without it")
    if not args.routed:
        if lean is None:
            sys.exit("this checkout has no FastPath: run with --routed")
        endpoints.install(app)
    print(f"wrk script: {_wrk_script(var, settings.secret_key_value)}", flush=True)
    token = tokens.make(settings.secret_key_value, "click", 1, 1, 3)
    print(f"one token:  http://127.0.0.1:{args.port}/r/{token}", flush=True)
    print(f"path: {'routed' if args.routed else 'FastPath'}, tracking: {args.mode}", flush=True)
    # As `tidings serve` runs it (uvloop, the header-deadline protocol), without access log.
    options = {**uvicorn_options(settings), "log_level": "warning", "access_log": False}
    uvicorn.run(app, host="127.0.0.1", port=args.port, **options)


if __name__ == "__main__":
    main()
