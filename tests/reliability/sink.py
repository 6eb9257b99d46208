"""Postfix's smtp-sink on loopback: started with fault flags, restarted, always killed.

smtp-sink is a single C process that answers SMTP as fast as the network allows, so it
carries the larger runs an in-process aiosmtpd could not. Its own flags script the
faults: `-r CMD` answers 450 to CMD, `-f CMD` 500, `-q CMD` drops the connection without
replying, `-Q CMD` answers 421 and drops. Each run (a "phase") dumps every message it
took to files of its own (`-d`), so a test can tell what the server saw before and after
a restart; `-v` logs every command, which is how refused RCPTs are counted.

What smtp-sink dumps is every message it read up to the final ".", whatever it then
replied (`-r .` still dumps). Tests therefore only fault commands before DATA, or `.`
with `-q` where "received, then dropped" is exactly the case being tested.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
_RCPT_ARGS = re.compile(rb"^X-Rcpt-Args: <([^>]*)>", re.M)
_BOUNDARY = re.compile(
    rb'^Content-Type: multipart/[^\n]*\n?[^\n]*boundary="?([^";\s]+)', re.M | re.I
)
_RCPT_LOG = re.compile(r"^\S*smtp-sink: rcpt TO:<([^>]*)>", re.M | re.I)


class SmtpSink:
    """smtp-sink on 127.0.0.1:`port`, in its own process group, one dump folder per phase."""

    def __init__(self, port: int) -> None:
        self.port = port
        # Not under pytest's tmp_path: that is 0700 root, and smtp-sink run as root must
        # drop to the postfix user (-u), which then has to write the dumps.
        self.root = Path(tempfile.mkdtemp(prefix="tidings-sink-"))
        self.root.chmod(0o777)
        self.proc: subprocess.Popen[bytes] | None = None
        self.phase = -1
        self.flags: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=5"

    def _dir(self, phase: int) -> Path:
        return self.root / f"phase{phase}"

    def start(self, *flags: str) -> SmtpSink:
        """Start a new phase with these extra flags (e.g. "-r", "RCPT"); wait for its greeting."""
        self.stop()
        self.phase += 1
        self.flags = flags
        folder = self._dir(self.phase)
        folder.mkdir(mode=0o777)
        folder.chmod(0o777)  # mkdir's mode is cut by the umask
        # %H%M%S spreads the files over one folder per second: smtp-sink names each dump
        # with a 32-bit random suffix, and thousands in one folder could collide.
        command = [SMTP_SINK, "-v", "-c", "-d", f"{folder}/%H%M%S/m.", *flags]
        if os.geteuid() == 0:
            command += ["-u", "postfix"]  # smtp-sink refuses to run as root without it
        command += [f"127.0.0.1:{self.port}", "1024"]
        log = (self.root / f"phase{self.phase}.log").open("wb")
        self.proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"smtp-sink exited {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(512).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"smtp-sink did not answer on port {self.port}: {self.log()}")

    def stop(self) -> None:
        """Kill the process group: SIGTERM, then SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        """Stop and remove every dump: the teardown."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self, phase: int | None = None) -> str:
        path = self.root / f"phase{self.phase if phase is None else phase}.log"
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def accepted(self, phase: int | None = None) -> Counter[str]:
        """Recipients of the whole messages dumped in one phase (or all), one file each."""
        return self._dumps(phase)[0]

    def partial(self, phase: int | None = None) -> Counter[str]:
        """Recipients of dumps cut off mid-DATA (the client dropped, or the sink was killed)."""
        return self._dumps(phase)[1]

    def _dumps(self, phase: int | None) -> tuple[Counter[str], Counter[str]]:
        phases = range(self.phase + 1) if phase is None else [phase]
        whole: Counter[str] = Counter()
        cut: Counter[str] = Counter()
        for p in phases:
            for path in self._dir(p).glob("*/m.*"):
                data = path.read_bytes()
                rcpts = [a.decode() for a in _RCPT_ARGS.findall(data[:4096])]
                (whole if _complete(data) else cut).update(rcpts)
        return whole, cut

    def rcpts(self, phase: int | None = None) -> Counter[str]:
        """RCPT TO commands the server read in a phase, per address (from its -v log)."""
        return Counter(_RCPT_LOG.findall(self.log(phase)))


def _complete(dump: bytes) -> bool:
    """The dump holds the whole message: it ends with its outermost closing MIME boundary.

    smtp-sink creates the file at DATA and writes as the data arrives, so a message cut
    off mid-DATA leaves a partial dump; Tidings' messages are always multipart, so the
    closing boundary of the top-level part is the last line of a whole one.
    """
    match = _BOUNDARY.search(dump)
    if match is None:
        return False
    return dump.rstrip().endswith(b"\n--" + match.group(1) + b"--")
