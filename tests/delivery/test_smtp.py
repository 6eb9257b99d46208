"""Our SMTP client (app/delivery/smtp.py) against real servers.

aiosmtpd with aiosmtplib as the reference (byte for byte), STARTTLS, SMTPS and AUTH with
a certificate made here, and a raw scripted server on loopback for what aiosmtpd cannot
be made to do: multi-line replies, a drop in the middle of DATA, a stall, an idle 421.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.delivery.smtp import dot_stuffed
from app.delivery.transport import DeliveryError, Envelope, SMTPServer, SMTPTransport
from tests.smtp import Received, ehlo_answer, free_port

HEAD = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: dots\r\n\r\n"
MESSAGES = [
    HEAD + b"Hello.\r\n",
    HEAD + b".leading dot\r\n..two dots\r\nmiddle\r\n.\r\nlone dot above\r\n.",
    b".a message that starts with a dot\r\n\r\nbody\r\n",
    HEAD + b"no final line end",
    HEAD + b"x" * 998 + b"\r\n" + b"=2E quoted\r\n" * 2000,
]


def _envelope(data: bytes, to: str = "b@example.org") -> Envelope:
    return Envelope("a@example.org", (to,), data)


class Recorder:
    """An aiosmtpd handler that keeps what it got; optionally advertises PIPELINING."""

    def __init__(self, pipelining: bool = False) -> None:
        self.pipelining = pipelining
        self.received: list[Received] = []
        self.logins: list[bytes] = []

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        return ehlo_answer(session, hostname, responses, self.pipelining)

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        data = bytes(envelope.original_content or b"")
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), data))
        return "250 2.0.0 OK queued"

    def authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == b"s3cret"
        if ok:
            self.logins.append(mechanism.encode() + b" " + data.login)
        return AuthResult(success=ok, handled=False)


def _start(handler: Recorder, **kwargs: Any) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
def recorder(request: pytest.FixtureRequest) -> Iterator[tuple[Recorder, int]]:
    handler = Recorder(pipelining=request.param)
    controller = _start(handler, data_size_limit=None)
    yield handler, int(controller.port)
    controller.stop()


async def test_the_server_receives_what_aiosmtplib_would_send(
    recorder: tuple[Recorder, int],
) -> None:
    handler, port = recorder
    ours = SMTPTransport(SMTPServer.from_url(f"smtp://127.0.0.1:{port}?max_connections=2"))
    try:
        for data in MESSAGES:
            await ours.send(_envelope(data))
    finally:
        await ours.close()
    mine = [r.data for r in handler.received]
    handler.received.clear()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as reference:
        for data in MESSAGES:
            await reference.sendmail("a@example.org", ["b@example.org"], data)
    assert mine == [r.data for r in handler.received]
    assert len(mine) == len(MESSAGES)
    assert mine[1] == MESSAGES[1] + b"\r\n"  # every dot survived; a final line end added


def test_dot_stuffing_normalises_stray_line_ends() -> None:
    assert dot_stuffed(b"a\r\n.b") == b"a\r\n..b\r\n.\r\n"
    assert dot_stuffed(b"a\n.b\rc\r\n") == b"a\r\n..b\r\nc\r\n.\r\n"


async def test_a_refused_recipient_is_reset_and_the_connection_kept(
    recorder: tuple[Recorder, int],
) -> None:
    handler, port = recorder
    transport = SMTPTransport(SMTPServer.from_url(f"smtp://127.0.0.1:{port}"))
    try:
        with pytest.raises(DeliveryError) as refused:
            await transport.send(_envelope(HEAD, to="bad<@example.org"))
        assert refused.value.permanent
        await transport.send(_envelope(HEAD + b"after\r\n"))
        assert len(transport._idle) == 1
    finally:
        await transport.close()
    assert [r.recipients for r in handler.received] == [["b@example.org"]]


# -- TLS and AUTH ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1, made for this test."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@pytest.mark.parametrize("exclude", [["LOGIN"], ["PLAIN"]], ids=["PLAIN", "LOGIN"])
async def test_starttls_and_auth(server_tls: ssl.SSLContext, exclude: list[str]) -> None:
    handler = Recorder()
    controller = _start(
        handler, tls_context=server_tls, require_starttls=True, auth_required=True,
        authenticator=handler.authenticate, auth_exclude_mechanism=exclude,
    )  # fmt: skip
    base = f"127.0.0.1:{controller.port}?starttls=true&verify=false&timeout=5"
    good = SMTPTransport(SMTPServer.from_url(f"smtp://user:s3cret@{base}"))
    wrong = SMTPTransport(SMTPServer.from_url(f"smtp://user:wrong@{base}"))
    checked = SMTPTransport(SMTPServer.from_url(f"smtp://user:s3cret@{base}&verify=true"))
    try:
        await good.send(_envelope(MESSAGES[1]))
        await good.send(_envelope(MESSAGES[0]))  # the same TLS session, reused
        with pytest.raises(DeliveryError) as refused:
            await wrong.send(_envelope(MESSAGES[0]))
        # A bad login is our configuration's fault, never the recipient's: temporary.
        assert refused.value.code == 535 and not refused.value.permanent
        with pytest.raises(DeliveryError) as untrusted:
            await checked.send(_envelope(MESSAGES[0]))
        assert "CERTIFICATE_VERIFY_FAILED" in str(untrusted.value)
    finally:
        for t in (good, wrong, checked):
            await t.close()
        controller.stop()
    mechanism = "LOGIN" if exclude == ["PLAIN"] else "PLAIN"
    assert handler.logins == [f"{mechanism} user".encode()]
    assert [r.data for r in handler.received] == [MESSAGES[1] + b"\r\n", MESSAGES[0]]


async def test_smtps(server_tls: ssl.SSLContext) -> None:
    handler = Recorder(pipelining=True)
    controller = _start(handler, ssl_context=server_tls)
    transport = SMTPTransport(
        SMTPServer.from_url(f"smtps://127.0.0.1:{controller.port}?verify=false")
    )
    try:
        await transport.send(_envelope(MESSAGES[2]))
    finally:
        await transport.close()
        controller.stop()
    assert [r.data for r in handler.received] == [MESSAGES[2]]


# -- a scripted server for faults --------------------------------------------------------


class Scripted:
    """A raw SMTP server on the test's own loop: each reply comes from a script."""

    def __init__(self, on_data: Callable[[int], bytes | None], mail: bytes = b"250 OK") -> None:
        self.on_data, self.mail = on_data, mail
        self.connections = 0
        self.commands: list[bytes] = []
        self.messages: list[bytes] = []
        # Per message: whether the next command had already arrived with its content,
        # before any reply to it (the client pipelined its next envelope behind it).
        self.behind: list[bool] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"smtp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}?timeout=0.5"

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"220 scripted ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                self.commands.append(verb)
                if verb == b"EHLO":
                    writer.write(b"250-scripted\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n")
                elif verb == b"MAIL":
                    writer.write(self.mail + b"\r\n")
                elif verb == b"RCPT":
                    writer.write(b"250 OK\r\n" if self.mail.startswith(b"2") else b"503 no\r\n")
                elif verb == b"DATA":
                    if not self.mail.startswith(b"2"):
                        writer.write(b"503 no\r\n")
                        continue
                    writer.write(b"354 go on\r\n")
                    data = await reader.readuntil(b"\r\n.\r\n")
                    await asyncio.sleep(0.01)  # what came in one write has arrived by now
                    self.behind.append(bool(reader._buffer))  # type: ignore[attr-defined]
                    reply = self.on_data(len(self.messages))
                    self.messages.append(data)
                    if reply is None:  # drop the connection without answering
                        writer.transport.abort()
                        return
                    if reply == b"stall":
                        await asyncio.sleep(5)
                        return
                    writer.write(reply)
                elif verb == b"RSET":
                    writer.write(b"250 reset\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


OK = b"250 2.0.0 OK\r\n"


async def test_multi_line_replies_keep_every_line_and_the_enhanced_code() -> None:
    script = [
        b"250-2.0.0 queued\r\n250 2.0.0 as ABC\r\n",
        b"550-5.1.1 no such user\r\n550 5.1.1 really\r\n",
    ]
    async with Scripted(lambda n: script[n]) as server:
        transport = SMTPTransport(SMTPServer.from_url(server.url))
        try:
            assert await transport.send(_envelope(HEAD)) == "250 2.0.0 queued\n2.0.0 as ABC"
            with pytest.raises(DeliveryError) as failed:
                await transport.send(_envelope(HEAD))
        finally:
            await transport.close()
    assert failed.value.permanent and failed.value.code == 550
    assert str(failed.value) == "550 5.1.1 no such user\n5.1.1 really"
    # Pipelined: MAIL, RCPT and DATA went together; a refused end of data ends the
    # transaction by itself (RFC 5321 4.1.1.4), so no RSET.
    assert server.commands == [b"EHLO"] + [b"MAIL", b"RCPT", b"DATA"] * 2 + [b"QUIT"]
    assert server.connections == 1


async def test_a_drop_mid_data_or_a_stall_is_temporary_and_the_connection_replaced() -> None:
    script: list[bytes | None] = [None, b"stall", OK]
    async with Scripted(lambda n: script[n]) as server:
        transport = SMTPTransport(SMTPServer.from_url(server.url))
        try:
            for expected in ("connection", "TimeoutError"):
                with pytest.raises(DeliveryError) as failed:
                    await transport.send(_envelope(MESSAGES[4]))
                assert failed.value.code is None and not failed.value.permanent
                assert expected in str(failed.value)
            assert (await transport.send(_envelope(MESSAGES[4]))).startswith("250")
        finally:
            await transport.close()
    assert server.connections == 3
    assert server.messages[2] == dot_stuffed(MESSAGES[4])


async def test_a_refused_mail_from_is_reset_and_a_421_closes() -> None:
    async with Scripted(lambda n: OK, mail=b"451 4.3.0 later") as server:
        transport = SMTPTransport(SMTPServer.from_url(server.url))
        try:
            with pytest.raises(DeliveryError) as failed:
                await transport.send(_envelope(HEAD))
            assert failed.value.code == 451 and "4.3.0" in str(failed.value)
            server.mail = b"421 4.7.0 go away"
            with pytest.raises(DeliveryError) as closing:
                await transport.send(_envelope(HEAD))
            assert closing.value.code == 421 and not transport._idle
            server.mail = b"250 OK"
            await transport.send(_envelope(HEAD))
        finally:
            await transport.close()
    assert server.connections == 2
    assert server.commands[:6] == [b"EHLO", b"MAIL", b"RCPT", b"DATA", b"RSET", b"MAIL"]


async def _run(url: str, count: int) -> tuple[list[str | DeliveryError | None], list[int]]:
    """One send_run of `count` messages (each says its number), as a dispatcher sender
    makes it: the outcomes in order (None: not sent), and how many times `more` was asked."""
    transport = SMTPTransport(SMTPServer.from_url(url))
    envelopes = [_envelope(HEAD + b"message %d\r\n" % i) for i in range(count)]
    waiting, asked = iter(envelopes[1:]), [0]
    outcomes: dict[int, str | DeliveryError] = {}

    def more() -> Envelope | None:
        asked[0] += 1
        return next(waiting, None)

    def report(envelope: Envelope, outcome: str | DeliveryError) -> None:
        assert envelopes.index(envelope) not in outcomes, "reported twice"
        outcomes[envelopes.index(envelope)] = outcome

    try:
        await transport.send_run(envelopes[0], more, report)
    finally:
        await transport.close()
    return [outcomes.get(i) for i in range(count)], asked


async def test_a_run_writes_each_envelope_behind_the_last_content() -> None:
    async with Scripted(lambda n: OK) as server:
        outcomes, _ = await _run(server.url, 3)
    assert all(isinstance(o, str) and o.startswith("250") for o in outcomes)
    assert server.commands == [b"EHLO"] + [b"MAIL", b"RCPT", b"DATA"] * 3 + [b"QUIT"]
    # The next MAIL FROM came with the content, before the server had answered it.
    assert server.behind == [True, True, False]
    assert server.connections == 1
    assert server.messages == [dot_stuffed(HEAD + b"message %d\r\n" % i) for i in range(3)]


async def test_a_refused_message_in_a_run_leaves_the_next_one_going() -> None:
    script = [OK, b"550 5.1.1 no such user\r\n", OK]
    async with Scripted(lambda n: script[n]) as server:
        outcomes, _ = await _run(server.url, 3)
    assert isinstance(outcomes[1], DeliveryError) and outcomes[1].permanent
    assert all(isinstance(outcomes[i], str) for i in (0, 2))
    # The end of data was refused; the next envelope was already out: no RSET.
    assert server.commands == [b"EHLO"] + [b"MAIL", b"RCPT", b"DATA"] * 3 + [b"QUIT"]
    assert server.connections == 1


@pytest.mark.parametrize("fault", [None, b"421 4.4.2 closing\r\n"], ids=["drop", "421"])
async def test_a_message_lost_in_a_run_sends_the_next_on_a_new_connection(
    fault: bytes | None,
) -> None:
    # Message 1's answer never comes (the connection drops) or is a 421: its outcome is
    # temporary; message 2, whose envelope went out behind it, goes on a fresh connection
    # and reaches the server once.
    script = [OK, fault, OK]
    async with Scripted(lambda n: script[min(n, 2)]) as server:
        outcomes, _ = await _run(server.url, 3)
    assert isinstance(outcomes[0], str)
    assert isinstance(outcomes[1], DeliveryError) and not outcomes[1].permanent
    assert isinstance(outcomes[2], str) and outcomes[2].startswith("250")
    assert server.connections == 2
    assert [m for m in server.messages if b"message 2" in m] == [
        dot_stuffed(HEAD + b"message 2\r\n")
    ]


async def test_without_pipelining_a_run_is_one_message() -> None:
    handler = Recorder(pipelining=False)
    controller = _start(handler)
    try:
        outcomes, asked = await _run(f"smtp://127.0.0.1:{controller.port}", 2)
    finally:
        controller.stop()
    # Nothing can go behind the content: `more` is not asked; the second is left to the
    # sender's next run.
    assert asked == [0]
    assert isinstance(outcomes[0], str) and outcomes[1] is None
    assert len(handler.received) == 1


async def test_a_421_said_while_idle_retires_the_connection() -> None:
    # The server says 421 right after the 250 and keeps the socket open: the next message
    # must not read that 421 as the answer to its MAIL FROM.
    async with Scripted(lambda n: OK + b"421 4.4.2 idle too long\r\n" if n == 0 else OK) as server:
        transport = SMTPTransport(SMTPServer.from_url(server.url))
        try:
            await transport.send(_envelope(HEAD))
            await asyncio.sleep(0.1)
            await transport.send(_envelope(HEAD))
        finally:
            await transport.close()
    assert server.connections == 2
    assert len(server.messages) == 2


def test_on_uvloop_with_starttls_and_auth(server_tls: ssl.SSLContext) -> None:
    # `tidings worker` runs on uvloop: its start_tls and transports must behave the same.
    uvloop = pytest.importorskip("uvloop")
    handler = Recorder(pipelining=True)
    controller = _start(
        handler, tls_context=server_tls, require_starttls=True, auth_required=True,
        authenticator=handler.authenticate,
    )  # fmt: skip
    url = f"smtp://user:s3cret@127.0.0.1:{controller.port}?starttls=true&verify=false"

    async def main() -> None:
        transport = SMTPTransport(SMTPServer.from_url(url))
        try:
            for data in MESSAGES:
                await transport.send(_envelope(data))
        finally:
            await transport.close()

    try:
        uvloop.run(main())
    finally:
        controller.stop()
    assert len(handler.logins) == 1
    assert [r.data for r in handler.received] == [
        m if m.endswith(b"\r\n") else m + b"\r\n" for m in MESSAGES
    ]
