"""Paired A/B of one dispatch scenario: two checkouts, run alternately, in one window.

    .venv/bin/python -m bench.paired --a /tmp/base --b . --backend postgres --workers 2

The machines drift by a quarter within minutes, so a change of 10% shows only when its
two sides run side by side: A and B alternate (A B, B A, A B, ...), each run in its own
checkout (cwd and PYTHONPATH there, this venv's Python, this file: an older side need
not have it), and each run's ratio is to the mean of an smtp-source run just before and
just after it. Export the older side first, e.g. `git archive c20e3c4 | tar -x -C /tmp/base`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SOURCE_COUNT = 20_000


async def one(backend: str, workers: int, dkim: bool, subscribers: int) -> dict[str, object]:
    """One run of the scenario in this checkout, with its adjacent smtp-source runs."""
    from bench import cost
    from bench.dispatch import Run, dispatch_once
    from bench.infra import Processes, smtp_source_rate, start_sink

    procs = Processes()
    try:
        key = cost.make_dkim_key(Path(tempfile.mkdtemp(prefix="bench-paired-")) / "dkim.pem")
        sink = start_sink(procs)
        size = 24_200  # bytes, the bench newsletter as sent
        before = smtp_source_rate(sink, size=size, count=SOURCE_COUNT)
        figures = await dispatch_once(
            Run(backend, workers, dkim, subscribers),
            procs=procs, sink_port=sink, dkim_key=key, concurrency=20,
        )  # fmt: skip
        source = (before + smtp_source_rate(sink, size=size, count=SOURCE_COUNT)) / 2
    finally:
        procs.stop_all()
    return {
        "rate": figures["rate"],
        "source": source,
        "ratio": figures["rate"] / source,
        "cpu_us": figures["cpu_us_per_msg"],
        "split_us": {k: round(v) for k, v in figures["cpu_split_us"].items()},
    }


def _ceiling(run: dict[str, Any]) -> float:
    """bench/dispatch.py's ceiling, from the split that older checkouts report too: the
    ratio at which every part's CPU a message would fill every core."""
    from bench.dispatch import CORES  # this checkout's, whichever side ran

    total_us = sum(run["split_us"].values())
    return CORES * 1e6 / total_us / run["source"] if total_us else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a", required=True, help="checkout of side A")
    parser.add_argument("--b", default=".", help="checkout of side B")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--workers", type=int, default=2, help="0: SQLite's embedded one")
    parser.add_argument("--dkim", action="store_true")
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a side's run, in its own checkout: one line of JSON
        result = asyncio.run(one(args.backend, args.workers, args.dkim, args.subscribers))
        print(json.dumps(result))
        return
    sides = {"A": Path(args.a).resolve(), "B": Path(args.b).resolve()}
    got: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for n in range(args.rounds):
        for side in ("A", "B") if n % 2 == 0 else ("B", "A"):
            where = sides[side]
            argv = [sys.executable, __file__, "--one", "--a", str(where),
                    "--backend", args.backend, "--workers", str(args.workers),
                    "--subscribers", str(args.subscribers)]  # fmt: skip
            if args.dkim:
                argv.append("--dkim")
            env = {**os.environ, "PYTHONPATH": str(where)}
            out = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True,
                                 timeout=900, check=True).stdout  # fmt: skip
            run = json.loads(out.strip().splitlines()[-1])
            run["ceiling"] = _ceiling(run)
            got[side].append(run)
            print(f"{side}: {run['ratio']:.3f} x smtp-source ({run['rate']:,.0f} msg/s vs"
                  f" {run['source']:,.0f}), ceiling {run['ceiling']:.3f},"
                  f" {run['cpu_us']:.0f} us CPU/msg, {run['split_us']}",
                  flush=True)  # fmt: skip
    for side, runs in got.items():
        ratios = [r["ratio"] for r in runs]
        used = statistics.median(r["ratio"] / r["ceiling"] for r in runs if r["ceiling"])
        print(f"{side} ({sides[side]}): median {statistics.median(ratios):.3f},"
              f" best {max(ratios):.3f}, all {' '.join(f'{x:.3f}' for x in ratios)};"
              f" CPU/msg median {statistics.median(r['cpu_us'] for r in runs):.0f} us;"
              f" of the ceiling, median {used:.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
