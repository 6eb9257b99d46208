"""A scripted aiosmtpd server that misbehaves: 421/451 replies, drops, stalls, 5xx, downtime."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.smtp import OffersPipelining, Received


@dataclass
class FaultPlan:
    """How the server answers the n-th attempt at a recipient; later attempts succeed."""

    seed: int = 1
    first_attempt: dict[str, float] = field(
        default_factory=lambda: {"421": 0.04, "451": 0.10, "drop": 0.05, "stall": 0.01}
    )
    second_attempt: dict[str, float] = field(default_factory=lambda: {"451": 0.05, "drop": 0.02})
    stall_seconds: float = 10.0
    max_stalls: int = 3
    always_550: frozenset[str] = frozenset()


class FaultySMTPServer:
    """aiosmtpd on 127.0.0.1:`port` whose replies follow a FaultPlan; start/stop at will."""

    def __init__(self, port: int, plan: FaultPlan) -> None:
        self.port = port
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.attempts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=2"

    def start(self) -> FaultySMTPServer:
        self.controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, decode_data=False
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(r for item in self.received for r in item.recipients)

    def decide(self, rcpt: str) -> str:
        with self.lock:
            self.attempts[rcpt] += 1
            n = self.attempts[rcpt]
            if rcpt in self.plan.always_550:
                action = "550"
            else:
                table = {1: self.plan.first_attempt, 2: self.plan.second_attempt}.get(n, {})
                action, roll = "ok", self.rng.random()
                for name, p in table.items():
                    if roll < p:
                        action = name
                        break
                    roll -= p
                if action == "stall" and self.faults["stall"] >= self.plan.max_stalls:
                    action = "451"
            self.faults[action] += 1
            return action


class _Handler(OffersPipelining):
    """Each fault lands with the next message's envelope already written behind the content."""

    def __init__(self, server: FaultySMTPServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        rcpt = envelope.rcpt_tos[0]
        action = self.server.decide(rcpt)
        if action == "stall":
            # Hang past the client's timeout; whatever the client did meanwhile, refuse after.
            await asyncio.sleep(self.server.plan.stall_seconds)
            return "451 4.3.0 stalled"
        if action == "drop":
            if smtp.transport is not None:
                smtp.transport.abort()
            return "421 closing"
        if action == "421":
            return "421 4.7.0 too many connections, try later"
        if action == "451":
            return "451 4.3.0 temporary local problem"
        if action == "550":
            return "550 5.1.1 no such user here"
        with self.server.lock:
            self.server.received.append(
                Received(
                    sender=envelope.mail_from or "",
                    recipients=list(envelope.rcpt_tos),
                    data=bytes(envelope.original_content or envelope.content or b""),
                )
            )
        return "250 OK"
