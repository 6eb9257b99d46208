"""A real HTTP receiver on 127.0.0.1 for webhook tests: it fails, stalls, redirects, recovers."""

from __future__ import annotations

import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


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
    slow_seconds: float = 5.0  # well past the tests' QUICK_TIMEOUT
    tls_host: str | None = None  # serve HTTPS with a certificate for this name
    cert_pem: bytes = b""
    sni: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def trust(self) -> ssl.SSLContext:
        """A client context that trusts this receiver's certificate (and nothing else)."""
        context = ssl.create_default_context(cadata=self.cert_pem.decode())
        return context

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
            headers = {k.lower(): v for k, v in self.headers.items()}
            receiver.calls.append(Call(self.path, headers, body, status))
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
    if receiver.tls_host:
        server.socket = _tls(receiver).wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def _certificate(key: Any, host: str) -> x509.Certificate:
    """Self-signed, naming `host` as its DNS name: the client checks the URL's host here."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip


def _tls(receiver: Receiver) -> ssl.SSLContext:
    """A server context with a fresh certificate for `receiver.tls_host`; records SNI."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(key, receiver.tls_host or "")
    receiver.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    folder = Path(tempfile.mkdtemp())
    (folder / "cert.pem").write_bytes(receiver.cert_pem)
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")

    def record_sni(sock: Any, name: str | None, ctx: Any) -> None:
        receiver.sni.append(name)

    context.sni_callback = record_sni
    return context
