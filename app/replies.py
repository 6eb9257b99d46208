"""What an SMTP reply or a DSN status means for its address: the one place that decides.

Used by the dispatcher (a 5xx at RCPT or DATA time) and by every bounce source (DSNs,
plain-text bounces, provider webhooks). The verdict is "hard" or "soft", and `counts`
says whether it is held against the address: a sender-side failure (our IP, our domain,
our content, our authentication: "policy") is recorded but never blocklists anyone.

Order of evidence, most specific first:
1. the words of the remote server's own reply, when they name a cause: a blocklist or
   reverse-DNS check on us, an unknown user, a full mailbox, a temporary condition;
2. the stage it failed at: a rejection at connection, HELO or MAIL FROM is about us;
3. the remote reply's enhanced code, then the reporting MTA's Status (often just a
   coarse 5.0.0 or 4.0.0 that says nothing about the cause), then the basic code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d)")
BASIC = re.compile(r"(?<![\d.#=-])([245][0-9][0-9])(?=[ :-]|$)", re.M)
URL = re.compile(r"(https?://|www\.)\S+", re.I)

# Office 365's directory check answers an unknown recipient with "access denied".
_NOT_HERE = re.compile(
    r"recipient address rejected: access denied|recip(ient)?notfound|resolver\.adr", re.I
)
_POLICY = re.compile(
    r"spam|\bube\b|black ?list|block ?list|\bblocked\b|blocked (by|using)|dnsbl|\brbl\b|"
    r"spamhaus|spamcop|sorbs|senderscore|reputation|reverse dns|\brdns\b|\bptr\b|"
    r"name lookup failed|dmarc|\bspf\b|dkim|authenticat|purported responsible|"
    r"relay(ing)? (access )?(denied|not permitted)|(not permitted|unable) to relay|no relaying|"
    r"relay quota|relay through this server|"
    r"sender (address|domain)|domain of sender|sender was rejected|unroutable sender|"
    r"valid sender domain|(message|mail) (size|length)|too (large|big)|size limit|line limit|"
    r"virus|malware|content rejected|polic(y|ies)|not authori[sz]ed|"
    r"smtp server of your isp|dynamic ip|dial-?up|invalid ip|unverifyable sending|"
    r"deferred due to|user complaints|unexpected volume|rate limit|too many (connections|messages)|"
    r"greylist|malformed|syntax error|resent-from|daily relay quota|your ip|\bip address\b|"
    r"provide a valid from",
    re.I,
)
# A rejection before any recipient was named is about the sender, not the address.
_SENDER_STAGE = re.compile(
    r"after (initial connection|ehlo|helo|mail from)|in reply to (ehlo|helo|mail from)|"
    r">>> mail from|sender was rejected",
    re.I,
)
_UNKNOWN = re.compile(
    r"user unknown|unknown (user|recipient|local|or illegal alias|address)|no such (user|mailbox|"
    r"recipient|address|account|domain|person)|(user|recipient|address|mailbox) (not found|"
    r"does not exist|doesn'?t exist)|does not exist|not exist|invalid (recipient|mailbox|address|"
    r"user|final delivery)|address (not found|couldn'?t be found)|not listed in|no mailbox|"
    r"unrouteable|host (not found|unknown)|domain (not found|does not exist)|name service error|"
    r"dns lookup failure|no mx|not a valid (user|recipient)|account (has been )?(disabled|closed|"
    r"deleted|discontinued|removed)|doesn'?t have an? \S+ account|not a member|"
    r"final (e-?mail )?delivery point|not recognized|addressee unknown|illegal alias|"
    r"no longer (valid|available|active)|has moved|mailbox (unavailable|not available)|"
    r"undeliverable address|nonexistent|non-existent|not our customer|recipient rejected|"
    r"no such person|not unique|domain is not reachable",
    re.I,
)
_FULL = re.compile(
    r"mailbox (is )?full|full mailbox|over ?quota|quota (exceeded|violation)|exceed\w* \w* ?quota|"
    r"disk ?quota|mailfolder is full|insufficient (storage|disk)|not enough (storage )?space|"
    r"exceeds allowed size|storage (allocation|limit)|overdrawn",
    re.I,
)
_TEMPORARY = re.compile(
    r"temporar|try again|deferred|delayed|connection (dropped|refused|timed out|lost)|timed? ?out|"
    r"could not (deliver|initiate)|giving up|expired|loops? back|too many hops|mail loop|"
    r"command died|unavailable to take delivery|(system|mailer|internal) error|unable to connect|"
    r"failed to read|retry|not available|service unavailable",
    re.I,
)


@dataclass(frozen=True)
class Verdict:
    """What a failed delivery means for its address: hard or soft, and held against it or not."""

    kind: str  # "hard" | "soft"
    counts: bool = True

    @property
    def policy(self) -> bool:
        """A sender-side failure: recorded, held against no one."""
        return not self.counts


def enhanced_code(text: str | None) -> str | None:
    """The most specific RFC 3463 code in a text: a quoted 5.1.1 beats a 5.0.0 beside it."""
    found = [m[0] for m in ENHANCED.finditer(text or "")]
    specific = [c for c in found if not c.endswith(".0.0")]
    return next(iter(specific or found), None)


def basic_code(text: str | None) -> int | None:
    """The first three-digit SMTP reply code in a text."""
    found = BASIC.search(text or "")
    return int(found[1]) if found else None


def best_status(status: str | None, reply: str | None) -> str | None:
    """The code to record: the remote reply's own when it has one, else the reporting MTA's."""
    return enhanced_code(reply) or enhanced_code(status)


def _cause(text: str) -> str | None:
    """The cause the reply's words name, if any."""
    if _NOT_HERE.search(text):
        return "unknown"
    if _POLICY.search(text) and not _FULL.search(text):
        return "policy"
    if "access denied" in text.lower() and not _UNKNOWN.search(text):
        return "policy"
    # Refused before RCPT TO: "no such domain" there is *our* domain.
    if _SENDER_STAGE.search(text) and "rcpt to" not in text.lower() and not _FULL.search(text):
        return "policy"
    for name, words in (("unknown", _UNKNOWN), ("full", _FULL), ("temporary", _TEMPORARY)):
        if words.search(text):
            return name
    return None


def _by_code(klass: int, subject: int, detail: int) -> str | None:
    """The cause an enhanced code names (RFC 3463); None when it is generic."""
    if subject == 1:
        if detail in (7, 8):  # the *sender's* address or domain
            return "policy"
        return "unknown" if detail in (1, 2, 3, 6, 10) else None
    if subject == 2:
        return {1: "unknown", 2: "full", 3: "policy", 4: "temporary"}.get(detail)
    if subject == 3:
        return {1: "full", 2: "unknown", 4: "policy"}.get(detail, "temporary" if detail else None)
    if subject == 4:
        return "unknown" if detail == 4 else "temporary"
    if subject in (5, 6):
        return "policy" if detail or subject == 6 else None
    if subject == 7:
        if detail in (17, 18):  # the mailbox or domain has a new owner (RFC 7293)
            return "unknown"
        return "temporary" if detail in (13, 14) else "policy"  # 7.13/7.14: account suspended
    return None


def _definitive(code: str | None) -> str | None:
    """The cause a specific code settles on its own; None for generic ones (X.0.0, 5.7.1...)."""
    if not code:
        return None
    klass, subject, detail = (int(n) for n in code.split("."))
    # Used for anything from "no such user" to "spam" (Office 365 answers an unknown user
    # with 5.4.1): the words decide.
    if (subject, detail) in ((7, 0), (7, 1), (4, 1)) or detail == 0:
        return None
    return _by_code(klass, subject, detail)


def _decide(remote: str | None, status: str | None, words: str | None) -> str | None:
    """Weigh the remote reply's code, the reporting MTA's Status and the reply's words."""
    if settled := _definitive(remote):
        return settled
    by_status = _definitive(status) if remote is None else None
    if by_status and words:
        # A coarse address-class Status is overruled by a reply that names another cause
        # ("5.1.1" with "mailbox full", or with "listed on a DNSBL"); a full-mailbox or
        # content Status keeps its own meaning.
        subject = (status or "").split(".")[1]
        if subject == "1" or (subject == "2" and not (status or "").endswith(".2.2")):
            return words
    if by_status:
        return by_status
    if words:
        return words
    code = remote or status
    if code:
        klass, sub, detail = (int(n) for n in code.split("."))
        return _by_code(klass, sub, detail)
    return None


def classify(
    reply: str | None,
    *,
    status: str | None = None,
    action: str | None = None,
    code: int | None = None,
) -> Verdict:
    """What a failure means: `reply` is the remote server's text, `status` the DSN's Status."""
    text = " ".join(URL.sub(" ", reply or "").split())
    enhanced = enhanced_code(text) or enhanced_code(status)
    basic = code or basic_code(text)
    temporary = (action or "").lower().startswith("delay") or (
        (enhanced or str(basic or "")).startswith("4")
    )
    cause = _decide(enhanced_code(text), enhanced_code(status), _cause(text))
    if cause is None and basic in (552,):  # "exceeded storage allocation"
        cause = "full"
    if cause == "policy":
        return Verdict("soft" if temporary else "hard", counts=False)
    if temporary or cause in ("full", "temporary"):
        return Verdict("soft")
    return Verdict("hard")


def hard_bounce(code: int | None, error: str) -> bool:
    """An SMTP reply that says the address itself is dead: blocklist it at once.

    Stricter than `classify`, which reads reports a mail system chose to send: at SMTP
    time a 5xx with no named cause ("500 5.3.0 command failed") is as likely our own
    fault or the server's, so only a reply that names the address (X.1.x, "no such
    user", a mailbox with a new owner) blocklists; the rest fail the delivery.
    """
    if code is None or code < 500:
        return False
    text = " ".join(URL.sub(" ", error or "").split())
    return _decide(enhanced_code(text), None, _cause(text)) == "unknown"
