"""The private state under var/: only the user Tidings runs as may read it.

It holds the SQLite database (every subscriber's address), the admin token, the signing
key and the outbox of unsent mail. Created 0700/0600, and put right at each start, since
SQLite and older versions created them world-readable (0755/0644 under a 022 umask).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from app.config import Settings

SECRET_FILES = ("admin-token", "secret-key")
# SQLite's companions are created with the database's own mode, so fixing it covers them.
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def sqlite_path(database_url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory ones."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)  # type: ignore[arg-type]


def secure(settings: Settings) -> None:
    """Make var/ 0700 and the database and secret files in it 0600 (creating var/)."""
    var = settings.var_dir
    var.mkdir(mode=0o700, parents=True, exist_ok=True)
    _chmod(var, 0o700)
    for name in SECRET_FILES:
        _chmod(var / name, 0o600)
    db = sqlite_path(settings.database_url)
    if db is not None:
        if db.parent.resolve() == var.resolve():
            _chmod(db.parent, 0o700)
        for suffix in SQLITE_COMPANIONS:
            _chmod(db.with_name(db.name + suffix), 0o600)


def _chmod(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_mode & 0o777 != mode:
            os.chmod(path, mode)
