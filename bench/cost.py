"""Cost per message, part by part: render, MIME, DKIM and the SMTP client, in CPU time.

CPU time (not wall time) per message is what tells how many messages a core can make,
and it is far less disturbed by the other processes of a shared machine than a rate.
The render and MIME figures use the renderer's own microbenchmark (bench_render.py).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.delivery.dkim import DkimSigner
from app.delivery.transport import Envelope, SMTPServer, SMTPTransport
from app.issues.rendering import CompiledIssue, IssueContent, compile_issue
from bench import bench_render
from bench.cpu_split import CPUSplit, smtp_sink
from bench.report import Results, Row


def make_dkim_key(path: Path) -> Path:
    """A fresh 2048-bit RSA key in PEM, as TIDINGS_DKIM_KEY_FILE wants it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return path


def newsletter() -> CompiledIssue:
    """The benchmark newsletter (bench_render's four-section issue), compiled once."""
    return compile_issue(newsletter_content(), archive_url="http://news.example.org/archive/1")


def newsletter_content() -> IssueContent:
    return IssueContent(
        id=1,
        subject="This week: nine stories",
        preheader="What happened, in brief",
        from_addr="Weekly News <news@example.org>",
        template="newsletter",
        format="markdown",
        body=bench_render.BODY,
        list_id="Weekly News <weekly.example.org>",
        list_names=("Weekly News",),
    )


def cpu_us_per_call(fn: Any, items: list[Any], passes: int = 1) -> float:
    """CPU microseconds per call of fn over items, the best of `passes` passes (others'
    processes on the same cores slow a pass down; the best one is the cost)."""
    best = float("inf")
    for _ in range(passes):
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, (time.process_time() - start) / len(items) * 1e6)
    return best


def measure_render(results: Results, *, recipients: int, dkim_key: Path) -> int:
    """Render, MIME and DKIM per recipient; returns the size of one message as sent."""
    issue = newsletter()
    rs = bench_render.recipients(recipients)
    size = len(issue.render_message(rs[0]))
    total = cpu_us_per_call(issue.render_message, rs, passes=3)
    # _parts is the renderer's per-recipient work before the bytes: the slot values (one
    # Jinja render) and tokens; the rest (escaping, QP pieces, headers) is the MIME step.
    parts = getattr(issue, "_parts", None)
    render = cpu_us_per_call(parts, rs, passes=3) if parts else None
    signer = DkimSigner(
        domain="example.org", selector="bench", private_key_pem=dkim_key.read_bytes()
    )
    message = issue.render_message(rs[0])
    dkim_us = cpu_us_per_call(lambda _: signer.sign(message), rs[: min(200, recipients)])
    results.raw["render"] = {
        "message_bytes": size,
        "render_mime_us": total,
        "render_us": render,
        "dkim_us": dkim_us,
    }
    results.add(Row("cost", "message size as sent", size / 1024, "KB"))
    if render is not None:
        results.add(Row("cost", "render (slot values of the compiled issue)", render, "us/msg"))
        results.add(Row("cost", "MIME (escaping, QP pieces, headers)", total - render, "us/msg"))
    results.add(Row("cost", "render + MIME", total, "us/msg", "< 100", total < 100, "CPU, 1 core"))
    results.add(Row("cost", "DKIM sign, RSA-2048 (app/delivery/dkim.py)", dkim_us, "us/msg"))
    try:
        tracked = _tracked_cost(rs)
    except Exception as exc:  # noqa: BLE001 - the engagement code may be mid-change: say so
        results.add(Row("cost", "render + MIME, tracking on", None, "us/msg", note=f"{exc!r}"))
    else:
        results.raw["render"]["render_mime_tracked_us"] = tracked
        results.add(
            Row(
                "cost",
                "render + MIME, tracking on (opens + clicks)",
                tracked,
                "us/msg",
                "< 100",
                tracked < 100,
                f"CPU, 1 core; {tracked / total:.2f}x untracked",
            )
        )
    return size


def _tracked_cost(rs: list[Any]) -> float:
    """render + MIME per recipient with every link rewritten to a signed token and a pixel."""
    from dataclasses import replace

    from app.engagement.links import Tracking

    site = "http://news.example.org"
    tracking = Tracking(
        issue_id=1, site_url=site, secret="bench-secret-" + "t" * 32, opens=True, clicks=True
    )
    issue = compile_issue(
        newsletter_content(), archive_url=f"{site}/archive/1", site_url=site, tracking=tracking
    )
    tracked = [replace(r, delivery_id=1000 + i, tracked=True) for i, r in enumerate(rs)]
    return cpu_us_per_call(issue.render_message, tracked, passes=3)


async def _smtp_loop(
    port: int, message: bytes, count: int, concurrency: int, runs: bool
) -> tuple[float, float, float]:
    """Our client's CPU a message (loop thread), its rate, and smtp-sink's CPU a message."""
    transport = SMTPTransport(
        SMTPServer.from_url(f"smtp://127.0.0.1:{port}?max_connections={concurrency}")
    )
    # crlf: the renderer vouches for its line endings, as the dispatcher's envelopes do.
    envelope = Envelope("bounces@example.org", ("reader@example.com",), message, crlf=True)
    queue = iter(range(count))

    def more() -> Envelope | None:
        return envelope if runs and next(queue, None) is not None else None

    async def one_sender() -> None:
        # As the dispatcher's senders: a run per connection, each next message taken as
        # the last one's content goes out (its envelope pipelined behind it); without
        # `runs`, one transaction a call, two round trips each.
        for _ in queue:
            await transport.send_run(envelope, more, lambda _, outcome: None)

    split = CPUSplit({"smtp-sink": smtp_sink(port)}).start()
    # The thread's own CPU (user and system: the socket writes are the kernel's work).
    cpu, wall = time.thread_time(), time.perf_counter()
    try:
        await asyncio.gather(*(one_sender() for _ in range(concurrency)))
    finally:
        await transport.close()
    wall = time.perf_counter() - wall
    sink_us = split.stop()["smtp-sink"] / count * 1e6
    return (time.thread_time() - cpu) / count * 1e6, count / wall, sink_us


def _on_worker_loop(
    port: int, message: bytes, count: int, concurrency: int, runs: bool
) -> tuple[float, float, float]:
    """The loop in a thread of its own on uvloop, the event loop `tidings worker` runs."""
    try:
        import uvloop
    except ImportError:  # Windows: asyncio's own loop, as the worker there
        return asyncio.run(_smtp_loop(port, message, count, concurrency, runs))
    return uvloop.run(_smtp_loop(port, message, count, concurrency, runs))


async def measure_smtp(results: Results, *, port: int, count: int, size: int) -> float:
    """Our SMTP transport alone (our own client, 20 pooled connections), one ready message,
    on the worker's event loop and with the dispatcher's envelopes: in runs, as the
    dispatcher sends, and one transaction a call, alternately (the machine drifts), the
    median of three of each."""
    message = newsletter().render_message(bench_render.recipients(1)[0])
    got: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    for runs in (True, False) * 3:
        got[runs].append(
            await asyncio.to_thread(_on_worker_loop, port, message, count // 3, 20, runs)
        )
    (cpu_us, rate, sink_us), (one_cpu, one_rate, one_sink) = (
        tuple(statistics.median(x[i] for x in got[k]) for i in range(3)) for k in (True, False)
    )
    one_at_a_time = {"cpu_us": one_cpu, "rate": one_rate, "sink_us": one_sink}
    results.raw["smtp_client"] = {
        "cpu_us": cpu_us, "rate": rate, "count": count, "sink_us": sink_us,
        "one_at_a_time": one_at_a_time,
    }  # fmt: skip
    results.add(
        Row(
            "cost",
            "SMTP client (SMTPTransport, 20 conns)",
            cpu_us,
            "us/msg",
            note=f"alone: {rate:,.0f} msg/s; smtp-sink {sink_us:.0f} us/msg",
        )
    )
    results.add(
        Row(
            "cost",
            "  the same, one transaction a call (no runs)",
            one_cpu,
            "us/msg",
            note=f"alone: {one_rate:,.0f} msg/s; smtp-sink {one_sink:.0f} us/msg",
        )
    )
    return cpu_us
