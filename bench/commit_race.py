"""Create an issue and send it at once, many times: does a 2xx mean the write is committed?

The `postgres-4w-dkimon` dispatch row of issue 6's run failed with a 404 on the send call
for issue 1, which had just been created. The cause was the app's: the request session
was committed by a FastAPI dependency with `yield` in its default ("request") scope, whose
exit code runs after the response has been sent, so the 201 of `POST /api/v1/issues`
could reach the client before the INSERT was committed, and a send call that came in
between read no issue. Commit 76145d9 declared the session `Depends(..., scope="function")`
(commit before the response). This is the check, against a real `tidings serve` on
PostgreSQL, of any tree that has the bench's infra/seed/stack modules:

    python -m bench.commit_race [N]                      # this tree: expect {202: N}
    git archive 76145d9^ | tar -x -C /tmp/pre && cd /tmp/pre \\
        && /work/main/.venv/bin/python /work/main/bench/commit_race.py 300 /tmp/pre

Measured 2026-12-01: on 76145d9^, 14, 1 and 0 of 300 send calls answered 404 in three
runs (a race: rarer the busier the machine); on e6324bd, the commit of the failed run,
5 of 300; on 76145d9 and on main, 0 of 300 and 0 of 450.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import tempfile
from pathlib import Path


async def race(count: int) -> dict[int, int]:
    """Status codes of `count` send calls, each right after the 201 that created its issue."""
    from bench.infra import Processes, create_pg_database, drop_pg_database, start_sink
    from bench.seed import migrate, seed
    from bench.stack import Stack, make_env

    procs = Processes()
    codes: collections.Counter[int] = collections.Counter()
    url = await create_pg_database()
    try:
        sink = start_sink(procs)
        await migrate(url)
        await seed(url, subscribers=5)
        tmp = Path(tempfile.mkdtemp(prefix="bench-commit-race-"))
        env = make_env(database_url=url, sink_port=sink, var_dir=tmp, embedded_worker=False)
        stack = await Stack(procs, env, "commit-race").start()
        for _ in range(count):
            issue_id = await stack.create_issue("Hello {{ subscriber.name }}")
            r = await stack.api.post(f"/api/v1/issues/{issue_id}/send", json={})
            codes[r.status_code] += 1
            if r.status_code == 404 and codes[404] <= 3:
                print(f"404 for issue {issue_id} created just before: {r.text}")
        await stack.stop()
    finally:
        procs.stop_all()
        await drop_pg_database(url)
    return dict(codes)


if __name__ == "__main__":
    if len(sys.argv) > 2:  # another tree (e.g. an old commit unpacked with git archive)
        sys.path.insert(0, sys.argv[2])
    print(asyncio.run(race(int(sys.argv[1]) if len(sys.argv) > 1 else 300)))
