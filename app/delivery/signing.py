"""DKIM signing off the event loop, with several chunks in flight.

Signing costs ~0.3 ms of CPU per 23 KB message (OpenSSL's RSA plus canonicalisation
and SHA-256 in dkim.py), as much as everything else the dispatcher does for a message.
The feeder hands each rendered chunk to `Signer.sign` in a task of its own and goes on
rendering the next chunk; the task queues the signed messages for the senders when they
are ready. The feeder only waits when `MAX_IN_FLIGHT` chunks are already being signed,
which bounds memory and what a pause has to release.

Processes or threads? `cryptography` keeps the GIL while it signs, so signing threads do
not run in parallel with the event loop: they spare the pickling of every message to a
process and back (~0.1 ms a message) but leave the dispatcher on one core. Processes use
the second core. POOL says which; see the measurements in the dispatcher's history.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from app.config import Settings

MAX_IN_FLIGHT = 4  # chunks being signed (or waiting for the send queue), per dispatcher
POOL = "process"  # or "thread"

_signer: Any = None


def _init_signer(domain: str, selector: str, key_file: str) -> None:
    global _signer
    from app.delivery.dkim import DkimSigner

    with open(key_file, "rb") as f:
        _signer = DkimSigner(domain=domain, selector=selector, private_key_pem=f.read())


def _sign_list(datas: list[bytes]) -> list[tuple[bytes, bool]]:
    """Per message: its DKIM-Signature header and True, or the whole signed message and False."""
    out = []
    for data in datas:
        signed = _signer.sign(data)
        # Only the new header goes back (the signer keeps a CRLF message as it is): half
        # the pickling and pipe traffic of a message.
        if signed.endswith(data):
            out.append((signed[: len(signed) - len(data)], True))
        else:
            out.append((signed, False))
    return out


class SignAgain(Exception):
    """The signing pool was restarted under this chunk: send it through again later."""


def dkim_configured(settings: Settings) -> bool:
    return bool(settings.dkim_domain and settings.dkim_selector and settings.dkim_key_file)


class Signer:
    """A pool that DKIM-signs lists of messages, processes by default."""

    def __init__(self, settings: Settings, kind: str | None = None) -> None:
        self.kind = kind or POOL
        self.args = (str(settings.dkim_domain), str(settings.dkim_selector),
                     str(settings.dkim_key_file))  # fmt: skip
        self.workers = os.cpu_count() or 1
        self.pool = self._start()
        self.failed_since_start = False  # the pool was restarted and has not signed since

    def _start(self) -> Executor:
        if self.kind == "thread":
            _init_signer(*self.args)
            return ThreadPoolExecutor(self.workers, thread_name_prefix="dkim")
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),  # no fork of a running loop
            initializer=_init_signer,
            initargs=self.args,
        )
        # Start the processes now (each submit with none idle spawns one): spawning and
        # importing take about a second, which the first chunk of a send would wait for.
        for _ in range(self.workers):
            pool.submit(_sign_list, [])
        return pool

    async def sign(self, datas: list[bytes]) -> list[bytes]:
        """The messages signed, split across the pool, in their order."""
        loop, pool = asyncio.get_running_loop(), self.pool
        parts = max(1, min(len(datas), self.workers))
        size = -(-len(datas) // parts)
        chunks = [datas[i : i + size] for i in range(0, len(datas), size)]
        try:
            signed = await asyncio.gather(
                *(loop.run_in_executor(pool, _sign_list, c) for c in chunks)
            )
        except BrokenExecutor:
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
        out = [m for part in signed for m in part]
        return [
            head + d if only_head else head for (head, only_head), d in zip(out, datas, strict=True)
        ]

    def close(self, *, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=True)


def start_signer(settings: Settings) -> Signer | None:
    """A signing pool when DKIM is configured, else None."""
    return Signer(settings) if dkim_configured(settings) else None
