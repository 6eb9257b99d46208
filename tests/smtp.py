"""A real SMTP server on loopback (aiosmtpd) that records what it receives.

`reply` can be set to script the server: a callable given the envelope that returns
an SMTP reply line ("250 OK", "451 4.7.1 slow down", "550 5.1.1 no such user") or
None to drop the connection.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


def ehlo_answer(
    session: Session, hostname: str, responses: list[str], pipelining: bool
) -> list[str]:
    """aiosmtpd's EHLO answer, with PIPELINING when asked (aiosmtpd reads one command at a
    time, so pipelined commands just wait in its buffer)."""
    session.host_name = hostname
    if pipelining:
        responses.insert(-1, "250-PIPELINING")
    return responses


class OffersPipelining:
    """An aiosmtpd handler's EHLO with PIPELINING, as every real server offers: the
    dispatcher then writes each next envelope behind the last content (its runs)."""

    async def handle_EHLO(
        self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        return ehlo_answer(session, hostname, responses, pipelining=True)


class _Handler(OffersPipelining):
    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        item = Received(
            sender=envelope.mail_from or "",
            recipients=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content or envelope.content or b""),
        )
        reply = self.server.reply(item) if self.server.reply else "250 OK"
        if reply is None:
            # Drop the connection without answering: the client must treat it as unknown.
            if smtp.transport is not None:
                smtp.transport.abort()
            return "421 closing"
        if reply.startswith("2"):
            with self.server.lock:
                self.server.received.append(item)
        return reply


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SMTPServer:
    """aiosmtpd on 127.0.0.1 and a free port, in its own thread."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.reply: Callable[[Received], str | None] | None = None
        self.lock = threading.Lock()
        self.controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=free_port(),
            decode_data=False,
            data_size_limit=None,
        )

    def start(self) -> SMTPServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
        self.reply = None

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.recipients]
