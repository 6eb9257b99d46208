"""The server's own hardening, on a real uvicorn on 127.0.0.1: slow clients, access log, Host."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from app.web.redaction import REDACTED, redact
from app.web.server import HeaderDeadlineProtocol, uvicorn_options
from tests.smtp import free_port

DEADLINE = 0.5  # seconds for headers and for a body in these tests
SLOW_BODY = (
    b"POST /api/v1/subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"email":'
)


class Live:
    """The app on uvicorn in a thread, with the options `tidings serve` passes."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = uvicorn_options(settings) | {"log_level": "info"}
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port,
                                lifespan="on", **options)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Live:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def live(make_settings: Callable[..., Settings]) -> Iterator[Live]:
    with Live(make_settings(header_timeout=DEADLINE, body_timeout=DEADLINE)) as server:
        yield server
    HeaderDeadlineProtocol.header_timeout = None


async def _closed_by_server(reader: asyncio.StreamReader, limit: float = 10.0) -> bytes:
    """Everything the server sends until it closes; the bound only keeps a broken run short."""
    return await asyncio.wait_for(reader.read(), timeout=limit)


async def test_slow_headers_and_slow_bodies_are_cut_off(live: Live) -> None:
    opened = []
    for _ in range(300):  # slow headers: a request line and one header, then nothing
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        opened.append((reader, writer))
    for _ in range(50):  # slow bodies: 10 of 100 declared bytes, then nothing
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        writer.write(SLOW_BODY)
        opened.append((reader, writer))
    await asyncio.gather(*(w.drain() for _, w in opened))
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", live.port)  # says nothing

    answers = await asyncio.gather(*(_closed_by_server(r) for r, _ in opened))
    assert all(a == b"" for a in answers[:300])  # closed without an answer
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers[300:]), answers[300][:200]
    assert await _closed_by_server(idle_reader) == b""
    for _, writer in [*opened, (None, idle_writer)]:
        writer.close()
    # Meanwhile, and after, a normal client is served.
    async with httpx.AsyncClient(base_url=live.url) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_a_keep_alive_connection_gets_a_deadline_for_each_request(live: Live) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b'{"status":"ok"}'), timeout=10)
    assert first.startswith(b"HTTP/1.1 200 ")
    writer.write(b"GET /healthz HTTP/1.1\r\n")  # the next request, never finished
    await writer.drain()
    assert await _closed_by_server(reader) == b""
    writer.close()


def test_redact_hides_tokens_and_secrets_but_keeps_the_route() -> None:
    token = "mfrggzdfmztwq2lknnwg23tpobyxe43uov3ho6dzpi"
    assert redact(f"/u/{token}") == f"/u/{REDACTED}"
    assert redact(f"/subscribe/confirm/{token}") == f"/subscribe/confirm/{REDACTED}"
    assert redact(f"/preferences/{token}/save") == f"/preferences/{REDACTED}/save"
    assert redact(f"/admin/invite/{token}") == f"/admin/invite/{REDACTED}"
    assert redact("/webhooks/dsn?secret=hunter2&x=1") == f"/webhooks/dsn?secret={REDACTED}&x=1"
    assert redact(f"/reset?t={token}") == f"/reset?t={REDACTED}"
    for kept in ("/api/v1/subscribers/import", "/archive/12", "/api/v1/issues?limit=10"):
        assert redact(kept) == kept


async def test_the_access_log_never_holds_a_token(live: Live) -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    token = "mfrggzdfmztwq2lknnwg23tpobyxe43uov3ho6dzpi"
    try:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            for path in (f"/u/{token}", f"/subscribe/confirm/{token}", f"/preferences/{token}",
                         f"/webhooks/dsn?secret={token}"):  # fmt: skip
                await client.get(path)
            await client.get("/healthz")
        for _ in range(100):  # the access line is written just after the response
            if len(lines) >= 5:
                break
            await asyncio.sleep(0.02)
    finally:
        access.removeHandler(handler)
    assert len(lines) >= 5, lines
    assert not [line for line in lines if token in line], lines
    assert any(f"/u/{REDACTED}" in line for line in lines)
    assert any("/healthz" in line for line in lines)


@pytest.mark.parametrize(
    ("method", "path", "status", "location"),
    [
        ("GET", "/archive/", 307, "/archive"),
        ("GET", "/archive/?before=5", 307, "/archive?before=5"),
        ("POST", "/api/v1/issues/", 308, "/api/v1/issues"),
        ("GET", "/archive/12/", 307, "/archive/12"),
    ],
)
async def test_redirects_never_name_the_host_the_client_sent(
    live: Live, method: str, path: str, status: int, location: str
) -> None:
    async with httpx.AsyncClient(base_url=live.url) as client:
        response = await client.request(method, path, headers={"Host": "evil.example"})
    assert response.status_code == status
    assert response.headers["location"] == location


async def test_no_redirect_leads_to_another_site(live: Live) -> None:
    def raw_get(path: bytes) -> bytes:
        request = b"GET " + path + b" HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", live.port), timeout=30) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    for path in (b"//evil.example/", b"/\\evil.example/", b"//evil.example/archive/"):
        answer: Any = await asyncio.to_thread(raw_get, path)
        head = answer.split(b"\r\n\r\n", 1)[0].lower().split(b"\r\n")
        for location in (h[len(b"location: ") :] for h in head if h.startswith(b"location:")):
            assert location.startswith(b"/") and location[1:2] not in (b"/", b"\\"), location
            assert b"evil.example" not in location
