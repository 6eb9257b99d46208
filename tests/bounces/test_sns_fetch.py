"""The SNS signing certificate, fetched for real: HTTPS to a local server with a test CA.

A TLS server on 127.0.0.1 presents a certificate for sns.us-east-1.amazonaws.com issued
by a CA made here. The client's transport connects to that port whatever the URL says,
but keeps the URL's host for SNI and for checking the certificate, so the code under test
runs its real fetch (httpx, TLS verification, redirects refused) against a real server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.bounces import sns
from app.bounces.sns import SignatureError, fetch_certificate, verify_sns

HOST = "sns.us-east-1.amazonaws.com"
PEM_PATH = "/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem"
CERT_URL = f"https://{HOST}{PEM_PATH}"
NOTIFICATION = {
    "Type": "Notification",
    "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
    "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-bounces",
    "Subject": "Amazon SES Email Event Notification",
    "Message": json.dumps({"notificationType": "Bounce", "bounce": {"bounceType": "Permanent"}}),
    "Timestamp": "2024-05-01T12:00:00.000Z",
    "SignatureVersion": "2",
}


# --- certificates ---------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class CA:
    """A certificate authority made for the test, which issues TLS server certificates."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, cn: str) -> CA:
        key, now = _key(), datetime.now(UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )  # fmt: skip
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(self, hostname: str, folder: Path) -> ssl.SSLContext:
        """A server context presenting a certificate for `hostname` signed by this CA."""
        key, now = _key(), datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(hostname))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = folder / f"{hostname}.crt", folder / f"{hostname}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context

    def trust(self) -> ssl.SSLContext:
        """A client context that trusts this CA alone, hostname checks on (the default)."""
        pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()
        return ssl.create_default_context(cadata=pem)


@pytest.fixture(scope="module")
def signing() -> tuple[rsa.RSAPrivateKey, bytes]:
    """The key SNS signs with, and its certificate as the PEM the server hands out."""
    key, now = _key(), datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("sns.amazonaws.com"))
        .issuer_name(_name("sns.amazonaws.com"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def signed(message: dict, key: rsa.RSAPrivateKey, url: str = CERT_URL) -> dict:
    """Sign the message's canonical string the way SNS does (version 2: SHA256)."""
    message = {**message, "SigningCertURL": url}
    signature = key.sign(sns.canonical_string(message), padding.PKCS1v15(), hashes.SHA256())
    return {**message, "Signature": base64.b64encode(signature).decode()}


# --- the local HTTPS server and the transport that reaches it ------------------------


@dataclass
class CertServer:
    """HTTPS on 127.0.0.1: the PEM at PEM_PATH, a 302 at /redirect.pem; counts requests."""

    pem: bytes
    port: int = 0
    requests: Counter[str] = field(default_factory=Counter)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            writer.close()  # a client that gave up during the handshake: nothing to count
            return
        path = head.split(b" ", 2)[1].decode()
        self.requests[path] = self.requests[path] + 1
        if path == PEM_PATH:
            status, headers, body = "200 OK", "Content-Type: application/x-pem-file\r\n", self.pem
        elif path == "/redirect.pem":
            status, headers, body = "302 Found", f"Location: {CERT_URL}\r\n", b""
        else:
            status, headers, body = "404 Not Found", "", b""
        writer.write(
            f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def serve(pem: bytes, context: ssl.SSLContext) -> AsyncIterator[CertServer]:
    server = CertServer(pem)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=context)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


class ToLoopback(httpx.AsyncBaseTransport):
    """Connect to 127.0.0.1:`port` for every request, TLS still checked for the URL's host.

    The URL's host goes into the `sni_hostname` extension, which httpcore uses as the TLS
    server_hostname: the name sent in SNI and the name the certificate must match.
    """

    def __init__(self, port: int, verify: ssl.SSLContext) -> None:
        self.port = port
        self.inner = httpx.AsyncHTTPTransport(verify=verify)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions = {**request.extensions, "sni_hostname": request.url.host}
        request.url = request.url.copy_with(host="127.0.0.1", port=self.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    sns._cert_cache.clear()
    yield
    sns._cert_cache.clear()


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.make("Tidings Test Root CA")


@pytest.fixture
async def aws(
    ca: CA, signing: tuple[rsa.RSAPrivateKey, bytes], tmp_path: Path
) -> AsyncIterator[tuple[CertServer, httpx.AsyncClient]]:
    """The 'AWS' certificate server, and an httpx client that trusts only the test CA."""
    async with serve(signing[1], ca.issue(HOST, tmp_path / "tls")) as server:
        async with httpx.AsyncClient(transport=ToLoopback(server.port, ca.trust())) as http:
            yield server, http


# --- tests ----------------------------------------------------------------------------


async def test_valid_signature_verifies_through_the_real_fetch_and_is_cached(
    aws: tuple[CertServer, httpx.AsyncClient], signing: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    server, http = aws
    key = signing[0]
    await verify_sns(signed(NOTIFICATION, key), http=http)
    assert server.requests == Counter({PEM_PATH: 1})
    other = {**NOTIFICATION, "MessageId": "a-second-one"}
    await verify_sns(signed(other, key), http=http)  # the cached certificate: no request
    assert server.requests == Counter({PEM_PATH: 1})
    assert await fetch_certificate(CERT_URL, http=http) == signing[1]


async def test_tampered_message_fails_with_the_fetched_certificate(
    aws: tuple[CertServer, httpx.AsyncClient], signing: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    server, http = aws
    message = signed(NOTIFICATION, signing[0])
    tampered = {**message, "Message": message["Message"].replace("Permanent", "Transient")}
    with pytest.raises(SignatureError, match="does not match"):
        await verify_sns(tampered, http=http)
    assert server.requests == Counter({PEM_PATH: 1})  # it was the signature, not the fetch
    forged = signed(NOTIFICATION, _key())  # right certificate URL, someone else's key
    with pytest.raises(SignatureError, match="does not match"):
        await verify_sns(forged, http=http)


@pytest.mark.parametrize("follow", [False, True])
async def test_a_redirect_from_the_certificate_url_is_not_followed(
    aws: tuple[CertServer, httpx.AsyncClient],
    signing: tuple[rsa.RSAPrivateKey, bytes],
    follow: bool,
) -> None:
    """Even through a client configured to follow redirects, and to a good certificate."""
    server, http = aws
    http.follow_redirects = follow
    url = f"https://{HOST}/redirect.pem"
    with pytest.raises(SignatureError, match="cannot load"):
        await verify_sns(signed(NOTIFICATION, signing[0], url), http=http)
    assert server.requests == Counter({"/redirect.pem": 1})  # the target was never asked for
    assert url not in sns._cert_cache


@pytest.mark.parametrize(
    "url",
    [
        f"http://{HOST}{PEM_PATH}",
        f"https://sns.us-east-1.amazonaws.com.evil.example{PEM_PATH}",
        f"https://evil.example/{HOST}{PEM_PATH}",
        f"https://s3.amazonaws.com{PEM_PATH}",
        f"https://{HOST}:8443{PEM_PATH}",
        f"https://{HOST}{PEM_PATH}?x=1",
    ],
)
async def test_certificates_from_elsewhere_are_refused_before_any_request(
    aws: tuple[CertServer, httpx.AsyncClient],
    signing: tuple[rsa.RSAPrivateKey, bytes],
    url: str,
) -> None:
    server, http = aws
    with pytest.raises(SignatureError, match="amazonaws.com host"):
        await verify_sns(signed(NOTIFICATION, signing[0], url), http=http)
    with pytest.raises(SignatureError, match="amazonaws.com host"):  # the fetch checks too
        await fetch_certificate(url, http=http)
    assert not server.requests


@pytest.mark.parametrize("presented", ["wrong CA", "wrong host"])
async def test_a_server_certificate_that_does_not_check_out_is_refused(
    ca: CA, signing: tuple[rsa.RSAPrivateKey, bytes], tmp_path: Path, presented: str
) -> None:
    """Another CA's certificate for the right name, or our CA's for another name."""
    if presented == "wrong CA":
        context = CA.make("Someone Else's CA").issue(HOST, tmp_path / "rogue")
    else:
        context = ca.issue("evil.example", tmp_path / "other")
    async with (
        serve(signing[1], context) as server,
        httpx.AsyncClient(transport=ToLoopback(server.port, ca.trust())) as http,
    ):
        with pytest.raises(SignatureError, match="cannot load"):
            await verify_sns(signed(NOTIFICATION, signing[0]), http=http)
    assert not server.requests  # the handshake failed: no HTTP request was ever sent
    assert CERT_URL not in sns._cert_cache


async def test_an_oversized_answer_is_not_buffered(
    ca: CA, tmp_path: Path, signing: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    huge = signing[1] * (sns.MAX_CERT_BYTES // len(signing[1]) + 2)
    async with (
        serve(huge, ca.issue(HOST, tmp_path / "tls")) as server,
        httpx.AsyncClient(transport=ToLoopback(server.port, ca.trust())) as http,
    ):
        with pytest.raises(SignatureError, match="too large"):
            await verify_sns(signed(NOTIFICATION, signing[0]), http=http)
