"""Where the machine's CPU went during a run: per part (workers, server, PostgreSQL, smtp-sink).

A dispatch run's rate is bounded by the two cores, shared by everything that takes part:
the workers, the server, the PostgreSQL backends and smtp-sink. Their CPU per message
says what bounds the rate, and what a bigger machine would change. A PostgreSQL backend
may end before the run does (a pool recycles it), and /proc forgets its time when it
exits, so every process is sampled ten times a second from a thread and each one's last
reading kept: what a process used in its last 0.1 s before exiting is all that is lost.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[str, int, float]]:
    """pid -> (command line, process group, CPU seconds) of every process now alive."""
    out: dict[int, tuple[str, int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        out[int(entry.name)] = (cmd, int(fields[2]), (int(fields[11]) + int(fields[12])) / TICK)
    return out


class CPUSplit:
    """CPU seconds per part from `start()` to `stop()`.

    `parts`: name -> a test of (command line, process group) that says a process belongs
    to that part; the first that matches wins. Processes born during the run count from 0.
    """

    def __init__(self, parts: dict[str, Callable[[str, int], bool]], every: float = 0.1):
        self.parts, self.every = parts, every
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _part(self, cmd: str, group: int) -> str | None:
        return next((name for name, test in self.parts.items() if test(cmd, group)), None)

    def _sample(self, initial: bool) -> None:
        for pid, (cmd, group, cpu) in _processes().items():
            part = self._part(cmd, group)
            if part is None:
                continue
            if pid not in self._first:
                self._first[pid] = cpu if initial else 0.0
            self._last[pid] = (part, cpu)

    def start(self) -> CPUSplit:
        self._sample(initial=True)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._done.wait(self.every):
            self._sample(initial=False)

    def stop(self) -> dict[str, float]:
        """CPU seconds of each part since start()."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self._sample(initial=False)
        totals = dict.fromkeys(self.parts, 0.0)
        for pid, (part, cpu) in self._last.items():
            totals[part] += cpu - self._first.get(pid, 0.0)
        return totals


def postgres_backends(database: str) -> Callable[[str, int], bool]:
    """A PostgreSQL backend connected to `database` ("postgres: 15/main: user db ...")."""
    needle = f" {database} "
    return lambda cmd, _group: cmd.startswith("postgres:") and needle in cmd


def smtp_sink(port: int) -> Callable[[str, int], bool]:
    """The smtp-sink listening on this loopback port (infra.start_sink)."""
    needle = f"127.0.0.1:{port}"
    return lambda cmd, _group: "smtp-sink" in cmd and needle in cmd


def in_group(pgid: int) -> Callable[[str, int], bool]:
    """A process of this process group (a child started with start_new_session)."""
    return lambda _cmd, group: group == pgid
