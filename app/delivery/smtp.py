"""A lean SMTP client for the dispatcher's hot path, on an asyncio Protocol.

aiosmtplib spends about two thirds of a send on work our messages do not need: two
regex passes over every 23 KB message (line endings, dot-stuffing), address re-parsing,
a lock and several awaits per command. Our messages are built with CRLF line endings
and 7-bit content, so the data needs one `bytes.replace` for dot-stuffing, and a whole
transaction needs two round trips with PIPELINING (RFC 2920): MAIL FROM, RCPT TO and
DATA in one write, then the message and its final dot in another. When the caller has a
next message for the same connection (`follow`), its MAIL FROM, RCPT TO and DATA go in
the same write as this message's content, which RFC 2920 3.1 allows ("the actual
transfer of message content is explicitly allowed to be the first 'command' in a
group"): one round trip a message instead of two, for us and for the server. A message's
content is still written only after its own 354. aiosmtplib stays the reference: tests
send the same messages through both and compare what the server got.

Errors are `SMTPReplyError` (the server said no: code and text, enhanced status code
included), `RecipientsRefused` (every RCPT refused) or `SMTPConnectionError` /
`TimeoutError` (the connection broke or stalled: what the server did is unknown).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from typing import TYPE_CHECKING, NamedTuple

from app.delivery.smtp_stream import (
    RecipientsRefused,
    Reply,
    ReplyStream,
    SMTPConnectionError,
    SMTPReplyError,
    dot_stuffed,
    mailbox,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.delivery.servers import SMTPServer

__all__ = [
    "Next",
    "RecipientsRefused",
    "Reply",
    "SMTPConnection",
    "SMTPConnectionError",
    "SMTPReplyError",
    "dot_stuffed",
    "local_hostname",
    "tls_context",
]


def tls_context(validate: bool) -> ssl.SSLContext:
    """A client context; `verify=false` in the URL turns certificate checks off."""
    context = ssl.create_default_context()
    if not validate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Next(NamedTuple):
    """The message to follow on the same connection, its envelope written ahead."""

    sender: str
    recipients: tuple[str, ...]
    payload: bytes  # dot_stuffed


_local_name: str | None = None


async def local_hostname() -> str:
    """Our name for EHLO: the FQDN, looked up once (it may ask DNS) and off the loop."""
    global _local_name
    if _local_name is None:
        _local_name = await asyncio.to_thread(socket.getfqdn)
    return _local_name


class SMTPConnection:
    """One authenticated SMTP session, reused transaction after transaction."""

    def __init__(self, stream: ReplyStream, server: SMTPServer) -> None:
        self._stream, self.server, self.timeout = stream, server, server.timeout
        self.extensions: dict[str, str] = {}
        self.usable = True  # False once its state is in doubt: the pool drops it
        # Replies owed to a next message's envelope, written behind the last content.
        self._ahead = 0

    @classmethod
    async def open(cls, server: SMTPServer) -> SMTPConnection:
        """Connect, greet, STARTTLS and authenticate as the server's URL says."""
        loop = asyncio.get_running_loop()
        context = tls_context(server.validate_certs) if server.use_tls else None
        _, stream = await asyncio.wait_for(
            loop.create_connection(
                lambda: ReplyStream(loop), server.host, server.port,
                ssl=context, server_hostname=server.host if context else None,
            ),
            server.timeout,
        )  # fmt: skip
        conn = cls(stream, server)
        try:
            await conn._expect(None, 220, "greeting")
            await conn._ehlo()
            if server.start_tls:
                await conn._starttls(loop)
            if server.username:
                await conn._login(server.username, server.password or "")
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _expect(self, command: bytes | None, code: int, name: str) -> Reply:
        if command is not None:
            self._stream.write(command)
        reply = (await self._stream.replies(1, self.timeout))[0]
        if reply.code != code:
            raise SMTPReplyError(reply, name)
        return reply

    async def _ehlo(self) -> None:
        name = (await local_hostname()).encode("idna")
        self._stream.write(b"EHLO " + name + b"\r\n")
        reply = (await self._stream.replies(1, self.timeout))[0]
        if reply.code != 250:  # a pre-ESMTP server: plain HELO, no extensions
            await self._expect(b"HELO " + name + b"\r\n", 250, "HELO")
            self.extensions = {}
            return
        lines = reply.text.split("\n")[1:]
        self.extensions = {
            word.lower(): rest for word, _, rest in (x.strip().partition(" ") for x in lines)
        }

    async def _starttls(self, loop: asyncio.AbstractEventLoop) -> None:
        if "starttls" not in self.extensions:
            raise SMTPConnectionError("the server does not offer STARTTLS, which the URL requires")
        await self._expect(b"STARTTLS\r\n", 220, "STARTTLS")
        stream = self._stream
        assert stream.transport is not None
        stream.transport = await loop.start_tls(  # type: ignore[assignment]
            stream.transport, stream, tls_context(self.server.validate_certs),
            server_hostname=self.server.host, ssl_handshake_timeout=self.timeout,
        )  # fmt: skip
        await self._ehlo()  # RFC 3207: forget what was said before TLS

    async def _login(self, username: str, password: str) -> None:
        methods = self.extensions.get("auth", "").upper().split()
        if "PLAIN" in methods:
            token = base64.b64encode(f"\0{username}\0{password}".encode())
            await self._expect(b"AUTH PLAIN " + token + b"\r\n", 235, "AUTH PLAIN")
        elif "LOGIN" in methods:
            await self._expect(b"AUTH LOGIN\r\n", 334, "AUTH LOGIN")
            await self._expect(base64.b64encode(username.encode()) + b"\r\n", 334, "AUTH LOGIN")
            await self._expect(base64.b64encode(password.encode()) + b"\r\n", 235, "AUTH LOGIN")
        else:
            raise SMTPConnectionError(f"no supported AUTH method offered (offered: {methods})")

    def _commands(self, sender: str, recipients: tuple[str, ...] | list[str], size: int) -> bytes:
        """MAIL FROM, the RCPT TOs and DATA of one transaction, as one write."""
        utf8 = not (sender.isascii() and all(r.isascii() for r in recipients))
        if utf8 and "smtputf8" not in self.extensions:
            raise ValueError("a non-ASCII address, and the server does not offer SMTPUTF8")
        mail = b"MAIL FROM:" + mailbox(sender, utf8)
        if "size" in self.extensions:  # RFC 1870: lets the server refuse a large one early
            mail += b" SIZE=%d" % size
        if utf8:
            mail += b" SMTPUTF8"
        rcpts = b"".join(b"RCPT TO:" + mailbox(r, utf8) + b"\r\n" for r in recipients)
        return mail + b"\r\n" + rcpts + b"DATA\r\n"

    async def send(
        self,
        sender: str,
        recipients: tuple[str, ...] | list[str],
        payload: bytes,
        follow: Callable[[], Next | None] | None = None,
    ) -> tuple[Reply, list[tuple[str, Reply]]]:
        """One transaction for a `dot_stuffed` payload: the final reply and refused recipients.

        `follow`, asked once the server has said 354, may name the next message for this
        connection: its envelope goes out behind this content, and the next call to send()
        must be for that message (its payload and envelope as given).
        """
        count = 2 + len(recipients)  # replies to MAIL, each RCPT and DATA
        ahead, self._ahead = self._ahead, 0  # written behind the previous message's content
        commands = b"" if ahead else self._commands(sender, recipients, len(payload) - 3)
        try:
            if ahead:
                replies = await self._stream.replies(count, self.timeout)
            else:
                replies = await self._envelope(commands, count)
            data = replies[-1] if len(replies) == count else None
            refused = [(r, x) for r, x in zip(recipients, replies[1:], strict=False)
                       if x.code not in (250, 251)]  # fmt: skip
            problem: Exception | None = None
            if replies[0].code != 250:
                problem = SMTPReplyError(replies[0], "MAIL FROM")
            elif len(refused) == len(recipients):
                problem = RecipientsRefused(refused)
            elif data is None or data.code != 354:
                problem = SMTPReplyError(data or replies[-1], "DATA")
            if problem is not None:
                if data is not None and data.code == 354:
                    # A pipelined DATA was taken though the envelope failed (RFC 2920 3.1):
                    # end it empty; the RSET below throws the transaction away.
                    self._stream.write(b".\r\n")
                    await self._stream.replies(1, self.timeout)
                closing = isinstance(problem, SMTPReplyError) and problem.reply.code == 421
                await self._reset(closing=closing)
                raise problem
            behind, owed = self._next_envelope(follow)
            # One write: the whole message, its final dot, and the next envelope if any.
            self._stream.write(payload + behind if behind else payload)
            self._ahead = owed
            final = (await self._stream.replies(1, self.timeout))[0]
        except (SMTPReplyError, RecipientsRefused):
            raise
        except BaseException:
            self.abort()  # a timeout or a drop: the session's state is unknown
            raise
        if final.code != 250:
            # The transaction is over either way (RFC 5321 4.1.1.4): no RSET, which would
            # also throw away a next envelope already written. A 421 closes the session.
            if final.code == 421:
                self.abort()
            raise SMTPReplyError(final, "end of DATA")
        return final, refused

    def _next_envelope(self, follow: Callable[[], Next | None] | None) -> tuple[bytes, int]:
        """The next message's envelope, to go behind this content, and its replies' count."""
        if follow is None or "pipelining" not in self.extensions:
            return b"", 0
        nxt = follow()
        if nxt is None:
            return b"", 0
        try:
            commands = self._commands(nxt.sender, nxt.recipients, len(nxt.payload) - 3)
        except ValueError:
            return b"", 0  # its own send() says why
        return commands, 2 + len(nxt.recipients)

    async def _envelope(self, written: bytes, count: int) -> list[Reply]:
        """MAIL, RCPTs and DATA (`count` commands): one write with PIPELINING, else one by one."""
        stream = self._stream
        if "pipelining" in self.extensions:
            stream.write(written)
            return await stream.replies(count, self.timeout)
        commands = written.splitlines(keepends=True)
        replies: list[Reply] = []
        for i, command in enumerate(commands):
            stream.write(command)
            reply = (await stream.replies(1, self.timeout))[0]
            replies.append(reply)
            if i == 0 and reply.code != 250:
                break
            if i == len(commands) - 2 and all(x.code not in (250, 251) for x in replies[1:]):
                break  # every recipient refused: no DATA
        return replies

    async def _reset(self, *, closing: bool) -> None:
        """RSET after a failed transaction; a connection that cannot be reset is dropped."""
        if closing:  # 421: the server is closing the channel
            self.abort()
            return
        try:
            await self._expect(b"RSET\r\n", 250, "RSET")
        except Exception:  # noqa: BLE001 - any failure here only means: do not reuse it
            self.abort()

    async def quit(self) -> None:
        """Say goodbye politely (bounded by the timeout), then close."""
        try:
            if self.usable:
                await self._expect(b"QUIT\r\n", 221, "QUIT")
        finally:
            self.abort()

    def abort(self) -> None:
        self.usable = False
        transport = self._stream.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    @property
    def is_connected(self) -> bool:
        """Fit for the next transaction: open, and nothing unasked-for waiting (a 421 when idle)."""
        stream = self._stream
        return self.usable and stream.error is None and len(stream._replies) <= self._ahead
