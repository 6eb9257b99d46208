"""A real HTTP receiver on 127.0.0.1 for webhook tests: it fails, stalls, redirects, recovers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Answers each POST with the next planned reply ("ok", 500, "slow", "redirect")."""

    port: int = 0
    plan: list[Any] = field(default_factory=list)
    default: Any = "ok"
    calls: list[Call] = field(default_factory=list)
    slow_seconds: float = 2.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def next_reply(self) -> Any:
        with self.lock:
            return self.plan.pop(0) if self.plan else self.default

    def delivered(self) -> list[Call]:
        return [c for c in self.calls if 200 <= c.answered < 300]


@contextmanager
def serve(**options: Any) -> Iterator[Receiver]:
    receiver = Receiver(**options)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            reply = receiver.next_reply()
            if reply == "slow":
                time.sleep(receiver.slow_seconds)
                reply = 200
            status = {"ok": 200, "redirect": 302}.get(reply, reply)
            receiver.calls.append(Call(self.path, dict(self.headers), body, status))
            self.send_response(status)
            if status == 302:
                self.send_header("location", "http://127.0.0.2:9/elsewhere")
            payload = b"x" * 5000 if status == 500 else b"thanks"
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
