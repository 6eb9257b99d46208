"""A lean SMTP client for the dispatcher's hot path, on an asyncio Protocol.

aiosmtplib spends about two thirds of a send on work our messages do not need: two
regex passes over every 23 KB message (line endings, dot-stuffing), address re-parsing,
a lock and several awaits per command. Our messages are built with CRLF line endings
and 7-bit content, so the data needs one `bytes.replace` for dot-stuffing, and a whole
transaction needs two round trips with PIPELINING (RFC 2920): MAIL FROM, RCPT TO and
DATA in one write, then the message and its final dot in another. aiosmtplib stays the
reference: tests send the same messages through both and compare what the server got.

Errors are `SMTPReplyError` (the server said no: code and text, enhanced status code
included), `RecipientsRefused` (every RCPT refused) or `SMTPConnectionError` /
`TimeoutError` (the connection broke or stalled: what the server did is unknown).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from typing import TYPE_CHECKING

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
    from app.delivery.servers import SMTPServer

__all__ = [
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

    async def send(
        self, sender: str, recipients: tuple[str, ...] | list[str], payload: bytes
    ) -> tuple[Reply, list[tuple[str, Reply]]]:
        """One transaction for a `dot_stuffed` payload: the final reply and refused recipients."""
        utf8 = not (sender.isascii() and all(r.isascii() for r in recipients))
        if utf8 and "smtputf8" not in self.extensions:
            raise ValueError("a non-ASCII address, and the server does not offer SMTPUTF8")
        mail = b"MAIL FROM:" + mailbox(sender, utf8)
        if "size" in self.extensions:  # RFC 1870: lets the server refuse a large one early
            mail += b" SIZE=%d" % (len(payload) - 3)
        if utf8:
            mail += b" SMTPUTF8"
        commands = [mail + b"\r\n"]
        commands += [b"RCPT TO:" + mailbox(r, utf8) + b"\r\n" for r in recipients]
        commands.append(b"DATA\r\n")
        try:
            replies = await self._envelope(commands)
            data = replies[-1] if len(replies) == len(commands) else None
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
                raise problem
            self._stream.write(payload)  # one write: the whole message and its final dot
            final = (await self._stream.replies(1, self.timeout))[0]
            if final.code != 250:
                raise SMTPReplyError(final, "end of DATA")
        except (SMTPReplyError, RecipientsRefused) as exc:
            code = exc.reply.code if isinstance(exc, SMTPReplyError) else 0
            await self._reset(closing=code == 421)
            raise
        except BaseException:
            self.abort()  # a timeout or a drop: the session's state is unknown
            raise
        return final, refused

    async def _envelope(self, commands: list[bytes]) -> list[Reply]:
        """MAIL, RCPTs and DATA: in one write with PIPELINING, else one by one."""
        stream = self._stream
        if "pipelining" in self.extensions:
            stream.write(b"".join(commands))
            return await stream.replies(len(commands), self.timeout)
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
        return self.usable and stream.error is None and not stream._replies
