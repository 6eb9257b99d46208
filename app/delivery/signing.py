"""DKIM signing off the event loop, with several chunks in flight.

Signing a 23 KB message costs its RSA-2048 signature (~0.26 ms of OpenSSL on a quiet core
here) and ~0.07-0.12 ms of Python and C passes in dkim.py (canonicalisation ~0.03-0.05,
SHA-256 of the body ~0.01-0.02, the header fields and the DKIM-Signature header the rest).
The feeder hands each rendered chunk to `Signer.sign` in a task of its own and goes on
rendering the next chunk; the task queues the signed messages for the senders when they
are ready. The feeder only waits when `MAX_IN_FLIGHT` chunks are already being signed,
which bounds memory and what a pause has to release. A chunk is signed in place: each
rendered message is replaced by its signed copy as soon as that exists, so a chunk in
flight holds one copy of its messages, not two.

Processes or threads? The RSA operation runs without the GIL (dkim.py calls OpenSSL
through ctypes, which lets go of it; so did `cryptography`: two threads sign ~2x as fast
as one, and a third thread runs Python meanwhile), so signing threads put the RSA work on
every core; what keeps the GIL is the rest (canonicalisation: C passes over the bytes).
Threads spare the trip of every message to a process and back, about 0.2 ms of CPU a
message on the two sides (pickling, pipes, the pool's helper threads); a process takes
all of the signing off the event loop's core. So:

- SQLite has one dispatcher, the embedded one, whose loop also renders and serves the
  web: processes take all of the signing off that core (bench, 2 cores, measured with
  the canonicalisation's old cost: 1,188 msg/s with processes, 856 with threads).
- PostgreSQL spreads the work over `tidings worker` processes, one or more per core;
  there threads cost less CPU per message and win (2 workers: 1,147 vs 965 msg/s;
  4 workers: 1,553 vs 1,135). Run one worker per core when DKIM is on.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # signing processes import this module: keep their start-up light
    from app.config import Settings

MAX_IN_FLIGHT = 4  # chunks being signed (or waiting for the send queue), per dispatcher
POOL: str | None = None  # "process" or "thread"; None: by the database, as said above
READY_WAIT = 30.0  # seconds a starting dispatcher waits for its signing processes

_signer: Any = None


def _init_signer(domain: str, selector: str, key_file: str) -> None:
    global _signer
    from app.delivery.dkim import DkimSigner

    with open(key_file, "rb") as f:
        _signer = DkimSigner(domain=domain, selector=selector, private_key_pem=f.read())


def _sign_list(datas: list[bytes], crlf: bool = False) -> list[tuple[bytes, bool]]:
    """Per message: its DKIM-Signature header and True, or the whole signed message and False."""
    out = []
    for data in datas:
        signed = _signer.sign(data, crlf=crlf)
        # Only the new header goes back (the signer keeps a CRLF message as it is): half
        # the pickling and pipe traffic of a message.
        if signed.endswith(data):
            out.append((signed[: len(signed) - len(data)], True))
        else:
            out.append((signed, False))
    return out


def _sign_in_place(datas: list[bytes], start: int, stop: int, crlf: bool) -> None:
    """A signing thread's share: datas[start:stop], each message replaced by its signed form.

    In place, so a rendered message is let go as soon as its signed copy exists (a chunk
    never holds both), and nothing is cut off and joined again on the event loop's thread.
    """
    sign = _signer.sign
    for i in range(start, stop):
        datas[i] = sign(datas[i], crlf=crlf)  # one item assignment: atomic under the GIL


class SignAgain(Exception):
    """The signing pool was restarted under this chunk: send it through again later."""


def dkim_configured(settings: Settings) -> bool:
    return bool(settings.dkim_domain and settings.dkim_selector and settings.dkim_key_file)


class Signer:
    """A pool that DKIM-signs lists of messages, processes by default."""

    def __init__(self, settings: Settings, kind: str | None = None) -> None:
        sqlite = settings.database_url.startswith("sqlite")
        self.kind = kind or POOL or ("process" if sqlite else "thread")
        self.args = (str(settings.dkim_domain), str(settings.dkim_selector),
                     str(settings.dkim_key_file))  # fmt: skip
        self.workers = os.cpu_count() or 1
        self._warm: list[Future[Any]] = []
        self.pool = self._start()
        self.failed_since_start = False  # the pool was restarted and has not signed since

    def _start(self) -> Executor:
        pool: Executor
        if self.kind == "thread":
            pool = ThreadPoolExecutor(
                self.workers, "dkim", initializer=_init_signer, initargs=self.args
            )
        else:
            # forkserver: one clean process (no event loop, no threads) is started with
            # the signer's modules loaded, and each signing process is forked from it.
            # Plain fork would copy our running loop and threads; spawn would start and
            # import a whole interpreter per process (~0.5 s of CPU each).
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["app.delivery.signing", "app.delivery.dkim"])
            pool = ProcessPoolExecutor(
                self.workers, context, initializer=_init_signer, initargs=self.args
            )
        # Start the workers now (each submit with none idle starts one), see ready(). A key
        # that cannot be loaded breaks the pool, even while we submit: the first chunk
        # then finds it broken, and pauses the issue.
        self._warm = []
        for _ in range(self.workers):
            try:
                self._warm.append(pool.submit(_sign_list, []))
            except (BrokenExecutor, OSError, RuntimeError):
                break
        return pool

    async def ready(self) -> None:
        """Wait until every signing process has started (errors surface at the first sign)."""
        if self._warm:
            waits = [asyncio.wrap_future(f) for f in self._warm]
            await asyncio.wait(waits, timeout=READY_WAIT)
            for w in waits:  # retrieved here, so that a failed start is not logged twice
                if w.done() and not w.cancelled():
                    w.exception()

    async def sign(self, datas: list[bytes], *, crlf: bool = False) -> list[bytes]:
        """The messages signed, split across the pool, in their order (`crlf`: see DkimSigner).

        Signs the list in place and returns it: each message is replaced by its signed
        form as soon as that is made, so a chunk in flight holds one copy of each message.
        """
        loop, pool = asyncio.get_running_loop(), self.pool
        parts = max(1, min(len(datas), self.workers))
        size = -(-len(datas) // parts)
        bounds = [(i, min(i + size, len(datas))) for i in range(0, len(datas), size)]
        try:
            if self.kind == "thread":
                await asyncio.gather(
                    *(loop.run_in_executor(pool, _sign_in_place, datas, a, b, crlf)
                      for a, b in bounds)
                )  # fmt: skip
            else:  # a process gets its share pickled, and sends back only the new headers
                signed = await asyncio.gather(
                    *(loop.run_in_executor(pool, _sign_list, datas[a:b], crlf) for a, b in bounds)
                )
                heads = [m for part in signed for m in part]
                for i, (head, only_head) in enumerate(heads):
                    datas[i] = head + datas[i] if only_head else head
        except (BrokenExecutor, OSError):  # OSError: the pool broke while we submitted
            # A signing process died. Every chunk in flight fails with it; the first to
            # notice starts a fresh pool, and all of them are tried again. A fresh pool
            # that breaks before signing anything (a key it cannot load) is final.
            if pool is self.pool:
                if self.failed_since_start:
                    raise
                self.close(wait=False)
                self.pool, self.failed_since_start = self._start(), True
            raise SignAgain from None
        self.failed_since_start = False
        return datas

    def close(self, *, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=True)


def start_signer(settings: Settings) -> Signer | None:
    """A signing pool when DKIM is configured, else None."""
    return Signer(settings) if dkim_configured(settings) else None
