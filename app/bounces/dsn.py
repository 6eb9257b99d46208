"""Bounce emails: RFC 3464 DSNs, non-standard MTA bounces and RFC 5965 complaint reports."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from flufl.bounce import all_failures

# A bounce quotes what it needs in its first few hundred kB; scanning more only costs time.
MAX_SCAN = 1_000_000

ENHANCED_CODE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
BASIC_CODE = re.compile(r"(?<![\d.])([245]\d\d)(?=[ -])")
VERP = re.compile(r"\bbounces\+([A-Za-z0-9._=-]+)@[A-Za-z0-9.-]+", re.IGNORECASE)
MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)

# Words that settle a diagnostic with no specific code (x.0.0, bare 550, or none at all).
FULL_WORDS = re.compile(r"mailbox (is )?full|over ?quota|quota exceeded|insufficient storage", re.I)
POLICY_WORDS = re.compile(
    r"spam|blocked|black ?list|block ?list|policy|reputation|dmarc|\bspf\b|dkim|content rejected",
    re.I,
)
AUTO_SUBJECT = re.compile(
    r"^(out of (the )?office|automatic reply|auto(matic)?[- ]?re(ply|sponse)|vacation|abwesenheit)",
    re.I,
)
DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail delivery)", re.I)
REDACTED = re.compile(r"redacted|^x+@|^\*+@", re.I)


@dataclass(frozen=True)
class BounceEvent:
    """One bounce, complaint or unsubscribe about one recipient, from any source."""

    type: str
    email: str | None
    status: str | None = None
    diagnostic: str | None = None
    counts: bool = True
    message_id: str | None = None
    verp_token: str | None = None
    provider_id: str | None = None
    event_key: str = ""
    occurred_at: datetime | None = None


class NotABounce(ValueError):
    """The message holds no bounce or complaint."""


def event_key(source: str, *parts: object) -> str:
    """A stable dedupe key: the same event delivered twice gives the same key."""
    digest = hashlib.sha256("\0".join(str(p or "") for p in parts).encode()).hexdigest()
    return f"{source}:{digest}"


def _hard_or_soft_5(subject: int, detail: int, diagnostic: str) -> tuple[str, bool]:
    """Classify a permanent (5.x.x) code; counts=False when the fault is ours, not the address's."""
    if subject == 7:  # security or policy: our reputation, auth or content, not the mailbox
        return "hard", False
    if subject == 1:  # addressing: no such user, bad domain
        return "hard", True
    if subject == 2:
        if detail == 2:  # mailbox full: may empty again
            return "soft", True
        if detail == 3:  # our message is too large
            return "hard", False
        return ("soft", True) if detail == 4 else ("hard", True)
    if subject == 3:
        if detail in (1, 2):  # the receiving system is full or not accepting mail for now
            return "soft", True
        return ("hard", False) if detail == 4 else ("hard", True)
    if subject == 4:
        if detail in (6, 7):  # routing loop, or our own queue gave up: says nothing of the address
            return "soft", True
        return "hard", True
    if subject == 5 and detail != 0:  # protocol errors are our MTA's; 5.5.0 is often "no mailbox"
        return "hard", False
    if subject == 6:  # media: our content
        return "hard", False
    return _from_words(diagnostic, "hard")


def _from_words(diagnostic: str, default: str) -> tuple[str, bool]:
    """Classify by what a diagnostic says when its code says nothing specific."""
    if FULL_WORDS.search(diagnostic):
        return "soft", True
    if POLICY_WORDS.search(diagnostic):
        return default, False
    return default, True


def best_status(status: str | None, diagnostic: str | None) -> str | None:
    """The most specific enhanced code: Exim and others say 5.0.0 but quote 5.1.1 in the text."""
    found = ENHANCED_CODE.search(status or "")
    quoted = ENHANCED_CODE.search(diagnostic or "")
    if found and quoted and found.group(2, 3) == ("0", "0") and quoted[1] == found[1]:
        return quoted[0]
    best = found or quoted
    return best[0] if best else None


def classify_status(
    status: str | None, diagnostic: str | None, action: str | None
) -> tuple[str, bool]:
    """Classify a failure as ("hard" | "soft", counts) from its RFC 3463 code, text and Action."""
    text = diagnostic or ""
    code = best_status(status, diagnostic)
    delayed = (action or "").lower().startswith("delay")
    if code is None:
        basic = BASIC_CODE.search(text)
        if basic is None:
            return _from_words(text, "soft" if delayed else "hard")
        if basic[1].startswith("4") or delayed:
            return "soft", not POLICY_WORDS.search(text)
        if basic[1] == "552":  # "exceeded storage allocation"
            return "soft", True
        return _from_words(text, "hard")
    klass, subject, detail = (int(n) for n in code.split("."))
    if klass == 4 or delayed:
        # Greylisting and rate limits (4.7.x) are about us, so they do not count either.
        return "soft", subject != 7
    if klass == 2:
        return "soft", False
    return _hard_or_soft_5(subject, detail, text)


def parse_bounce_email(raw: bytes) -> list[BounceEvent]:
    """Every bounce or complaint a raw email reports; NotABounce when it holds none."""
    try:
        events = _parse(message_from_bytes(bytes(raw[:MAX_SCAN])))
    except NotABounce:
        raise
    except Exception as exc:  # noqa: BLE001  garbage in must be a 422, never a 500
        raise NotABounce(f"unreadable message: {type(exc).__name__}") from exc
    if not events:
        raise NotABounce("no failed recipient found")
    return events


def _parse(msg: Message) -> list[BounceEvent]:
    """Dispatch on what kind of report the message is."""
    # report.py builds on this module's helpers, so it is imported only when needed.
    from app.bounces.report import original_of, parse_report

    if msg.get_content_type() == "multipart/report":
        return parse_report(msg)
    if is_auto_reply(msg):
        raise NotABounce("auto-reply")
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # noqa: BLE001  flufl's heuristics trip on odd MIME; treat as no bounce
        return []
    text = text_of(msg)
    context = Context.of(msg, text, original_of(list(msg.walk())))
    events = []
    failed = sorted((a.decode(), "failed") for a in permanent)
    failed += sorted((a.decode(), "delayed") for a in temporary - permanent)
    for address, action in failed:
        diagnostic = near(text, address)
        kind, counts = classify_status(None, diagnostic, action)
        events.append(
            context.event(address, kind, counts, best_status(None, diagnostic), diagnostic)
        )
    return events


def is_auto_reply(msg: Message) -> bool:
    """Out-of-office and other auto-replies (RFC 3834 and the vendors' own headers)."""
    if any(msg.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress-Reply")):
        return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    if AUTO_SUBJECT.search(str(msg.get("Subject", "")).strip()):
        return True
    submitted = str(msg.get("Auto-Submitted", "no")).strip().lower()
    # MTAs mark bounces auto-replied too (RFC 3834), so only a person's mailbox counts here.
    sender = parseaddr(str(msg.get("From", "")))
    return submitted.startswith("auto-") and not DAEMON.match(sender[1] or sender[0])


def text_of(msg: Message) -> str:
    """The decoded text of every text part, capped, where MTAs write their explanations."""
    chunks: list[str] = []
    size = 0
    for part in msg.walk():
        if part.get_content_maintype() != "text" or size > MAX_SCAN:
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            charset = part.get_content_charset() or "utf-8"
            try:
                chunk = payload.decode(charset, "replace")
            except LookupError:  # an unknown charset name
                chunk = payload.decode("utf-8", "replace")
            chunks.append(chunk[:MAX_SCAN])
            size += len(chunk)
    return "\n".join(chunks)


def near(text: str, address: str) -> str | None:
    """The diagnostic paragraph an MTA wrote about a failed address."""
    for stop in ("--- Below this line", "------ This is a copy", "\nReturn-Path:"):
        text = text.split(stop, 1)[0]
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if address.lower() in p.lower()]
    if not paragraphs:
        return None
    # The paragraph with a code explains the failure; else the last one (Exchange lists the
    # address in a quoted "To:" before its verdict).
    chosen = next((p for p in paragraphs if ENHANCED_CODE.search(p)), paragraphs[-1])
    return " ".join(chosen.split())[:500] or None


def verp_token(*values: object) -> str | None:
    """The token of the first VERP address bounces+<token>@domain among the values."""
    for value in values:
        if value and (found := VERP.search(str(value))):
            return found[1]
    return None


def message_id_in(text: str) -> str | None:
    """The first Message-ID header quoted in a text (the original's, in a bounce body)."""
    found = MESSAGE_ID.search(text)
    return found[1] if found else None


def when(value: object) -> datetime | None:
    """A date header as a datetime, or None when it is missing or broken."""
    try:
        stamp = parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    # "-0000" means "zone unknown" (RFC 5322); UTC is the best guess and keeps datetimes aware.
    return stamp.replace(tzinfo=UTC) if stamp and stamp.tzinfo is None else stamp


def clean_address(value: object) -> str | None:
    """The bare address in a header or DSN field, None when missing or redacted."""
    text = str(value or "")
    if ";" in text and "@" in text.split(";", 1)[1]:
        text = text.split(";", 1)[1]  # "rfc822; user@example.org"
    address = (getaddresses([text]) or [("", "")])[0][1].strip().strip("<>")
    if "@" not in address or REDACTED.search(address):
        return None
    return address.lower()


@dataclass(frozen=True)
class Context:
    """What one report says about the original message, shared by all its recipients."""

    basis: str
    message_id: str | None
    verp_token: str | None
    occurred_at: datetime | None

    @classmethod
    def of(cls, msg: Message, text: str, original: Message | None = None) -> Context:
        """Gather the original's identity from the bounce's envelope and what it quotes."""
        start = text.find("Return-Path:")
        quoted = original or HeaderParser().parsestr(text[start:] if start >= 0 else "")
        token = verp_token(
            *(msg.get(h) for h in ("X-Original-To", "Delivered-To", "Envelope-To", "To")),
            quoted.get("Return-Path"),
            text,
        )
        # A bounce's own Message-ID is stable across redeliveries; its Received lines are not.
        own_id = msg.get("Message-ID")
        basis = str(own_id) if own_id else hashlib.sha256(text.encode()).hexdigest()
        original_id = quoted.get("Message-ID") if original is not None else None
        return cls(
            basis=basis,
            message_id=str(original_id).strip() if original_id else message_id_in(text),
            verp_token=token,
            occurred_at=when(msg.get("Date")),
        )

    def event(
        self, email: str | None, kind: str, counts: bool, status: str | None, diag: str | None
    ) -> BounceEvent:
        """A BounceEvent for one recipient of this report."""
        return BounceEvent(
            type=kind,
            email=clean_address(email),
            status=status,
            diagnostic=diag,
            counts=counts,
            message_id=self.message_id,
            verp_token=self.verp_token,
            event_key=event_key("dsn", self.basis, clean_address(email), self.message_id, kind),
            occurred_at=self.occurred_at,
        )
