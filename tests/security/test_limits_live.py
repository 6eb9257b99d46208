"""The size limit over a real socket to a real server: what it reads, and its memory."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.security.live import LiveServer

pytestmark = pytest.mark.slow
BIG = 30 * 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("limits"), webhook_secret="s").start()
    yield server
    server.stop()


def _push(server: LiveServer, path: str, *, chunked: bool) -> tuple[bytes, int]:
    """Send up to 30 MB to `path`, stopping once the server answers; (answer, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BIG}"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: tidings.test\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        f"X-Tidings-Secret: s\r\nContent-Type: application/json\r\n{length}\r\n\r\n"
    )
    sock.sendall(head.encode())
    chunk = (b"%x\r\n" % CHUNK + b"a" * CHUNK + b"\r\n") if chunked else b"a" * CHUNK
    sent = 0
    answer = b""
    deadline = time.monotonic() + 60
    try:
        while sent < BIG and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(chunk)
            sent += CHUNK
    except OSError:
        pass  # the server closed the connection on us: it stopped reading
    try:
        sock.settimeout(10)
        answer = sock.recv(4096)
    except OSError:
        pass
    sock.close()
    return answer, sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/api/v1/issues", "/api/v1/subscribe", "/webhooks/dsn"])
def test_30mb_refused_by_a_real_server(live: LiveServer, path: str, chunked: bool) -> None:
    """413 after reading about the limit (plus socket buffers), and no 30 MB of memory."""
    before = live.rss_kib()
    answer, sent = _push(live, path, chunked=chunked)
    grew = live.rss_kib() - before
    print(f"\n{path} ({'chunked' if chunked else 'declared'}): answered after {sent} B "
          f"sent, RSS +{grew} KiB")  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 12 * 1024 * 1024  # the 1 MB limit plus kernel and server buffers
    assert grew < 10 * 1024, grew
