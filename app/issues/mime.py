"""RFC 5322/2045 message assembly from parts that were quoted-printable-encoded once per issue.

Python's email package costs about 1.6 ms per 20 KB message, and QP-encoding 20 KB with
binascii about 85 us, so per recipient we only encode the small slot values and join
pre-encoded bytes. Every piece but the last ends in a soft line break, which keeps each
line within 76 characters however the pieces are joined.
"""

from __future__ import annotations

import base64
import binascii
import email.header
import email.policy
import re
import secrets
import time
from collections.abc import Sequence
from email.utils import formatdate

from app.issues.templating import HeaderError

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_ATEXT_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_MAX_NAME = 200
_MAX_SUBJECT = 500  # the API's bound on a subject's source
_FOLD_AT = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters


def clean_header_text(value: str) -> str:
    """Subscriber-supplied text made safe for a header: CR, LF and controls become spaces."""
    return " ".join(_CONTROL.sub(" ", value).split())[:_MAX_NAME]


def clean_subject(value: str) -> str:
    """A rendered subject made safe for a header: controls become spaces, runs of space one."""
    return " ".join(_CONTROL.sub(" ", value).split())[:_MAX_SUBJECT]


def check_header_value(value: str, what: str) -> None:
    """Raise HeaderError when `value` holds CR, LF or another control character.

    The text is checked as written and as a mail reader would decode it: an RFC 2047
    encoded-word such as `=?utf-8?q?a=0D=0ABcc:x?=` is plain ASCII, but the standard
    library's header folding decodes it, and the CR LF inside would reach the header.
    """
    if _CONTROL.search(value):
        raise HeaderError(f"{what} must not contain line breaks or control characters")
    if "=?" in value:
        try:
            decoded = str(email.header.make_header(email.header.decode_header(value)))
        except (ValueError, LookupError, UnicodeError) as exc:
            raise HeaderError(f"{what} holds a malformed encoded-word: {exc}") from None
        if _CONTROL.search(decoded):
            raise HeaderError(f"{what} must not encode line breaks or control characters")


def fold_header(name: str, value: str) -> bytes:
    """One header, folded and RFC 2047-encoded by the standard library (used once per issue)."""
    check_header_value(value, name)
    policy = email.policy.SMTP
    return policy.header_factory(name, value).fold(policy=policy).encode("ascii")


def _encoded_words(text: str, first: int = 45) -> str:
    """RFC 2047 base64 encoded-words of at most 75 characters, folded onto new lines.

    45 bytes make 60 base64 characters plus 12 of wrapping; `first` bytes at most go into
    the first word, which shares its line with the field name. UTF-8 sequences stay whole.
    """
    data = text.encode("utf-8")
    if len(data) <= first:  # a name, mostly: one word
        return f"=?utf-8?b?{binascii.b2a_base64(data, newline=False).decode()}?="
    words, start, limit = [], 0, first
    while len(data) - start > limit:
        end = start + limit
        while data[end] & 0xC0 == 0x80:  # a continuation byte: cut before its sequence
            end -= 1
        words.append(data[start:end])
        start, limit = end, 45
    words.append(data[start:])
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode()}?=" for w in words)


def subject_header(value: str) -> bytes:
    """A `Subject:` line for a cleaned per-recipient value, without the email package's cost.

    ASCII is folded at spaces; anything else, or text that would read as an encoded-word,
    becomes base64 encoded-words (39 bytes fit beside "Subject: " within 76 characters).
    """
    if value.isascii() and "=?" not in value:
        if len(value) <= _FOLD_AT - 9:
            return b"Subject: " + value.encode("ascii") + b"\r\n"
        lines, line = [], "Subject:"
        for word in value.split(" "):
            if len(line) + 1 + len(word) > _FOLD_AT and line != "Subject:":
                lines.append(line)
                line = ""
            line += " " + word
        return ("\r\n".join([*lines, line]) + "\r\n").encode("ascii")
    return b"Subject: " + _encoded_words(value, first=39).encode("ascii") + b"\r\n"


def format_address(name: str, addr: str) -> str:
    """`name <addr>` for a header: quoted or RFC 2047-encoded as needed; never CR/LF."""
    addr = clean_header_text(addr).replace(" ", "")
    if "@" in addr:
        local, _, domain = addr.rpartition("@")
        if not domain.isascii():
            addr = f"{local}@{domain.encode('idna').decode()}"
    name = clean_header_text(name)
    if not name:
        return addr
    if not name.isascii() or "=?" in name:  # a name that reads as an encoded-word is encoded
        phrase = _encoded_words(name)
    elif _ATEXT_PHRASE.fullmatch(name):
        phrase = name
    else:
        phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{phrase} <{addr}>"


def qp(text: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line endings (hard breaks where the text has them)."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def soft_end(encoded: bytes) -> bytes:
    """End a QP piece in a soft line break, so the next piece starts its own line."""
    if not encoded or encoded.endswith(b"\r\n"):
        return encoded
    head, sep, last = encoded.rpartition(b"\r\n")
    head += sep
    if len(last) < 76:
        return head + last + b"=\r\n"
    cut = 75
    while last[cut - 1 : cut] == b"=" or last[cut - 2 : cut - 1] == b"=":
        cut -= 1  # never split an =XX escape
    return head + last[:cut] + b"=\r\n" + last[cut:] + b"=\r\n"


SOFT_BREAK = b"=\r\n"


def qp_piece(value: str) -> bytes:
    """A per-recipient value (one line: layout.py flattened it) as a QP piece ending in a
    soft break."""
    if not value:
        return b""
    encoded = binascii.b2a_qp(value.encode("utf-8"), istext=True)
    if len(encoded) < 76:  # the common case: shorter than a line, so it holds no soft break
        return encoded + SOFT_BREAK
    return soft_end(qp(value))


class PartChunks:
    """A text or HTML part split at its slots, each static chunk pre-encoded."""

    def __init__(self, chunks: Sequence[str]):
        self.chunks = list(chunks)  # static, slot, static, slot, ..., static
        statics = self.chunks[0::2]
        self.encoded = [soft_end(qp(c)) for c in statics[:-1]] + [qp(statics[-1])]
        self._frame = [b""] * (2 * len(self.encoded) - 1)
        self._frame[0::2] = self.encoded

    def text(self, values: Sequence[str]) -> str:
        """The part's decoded text for these slot values."""
        out = [self.chunks[0]]
        for value, static in zip(values, self.chunks[2::2], strict=True):
            out += (value, static)
        return "".join(out)

    def joined(self, pieces: list[bytes]) -> bytes:
        """The part's QP body with these QP pieces (one a slot, see qp_piece) in its slots."""
        out = self._frame.copy()
        out[1::2] = pieces  # a ValueError unless there is one piece a slot
        return b"".join(out)


_date_cache: tuple[int, bytes] = (0, b"")


def date_header() -> bytes:
    """The Date header value, formatted at most once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).replace("GMT", "+0000").encode())
    return _date_cache[1]


class MessageSkeleton:
    """The fixed bytes of an issue's messages; per recipient only To, ids and parts vary."""

    def __init__(self, *, from_addr: str, subject: str | None, list_id: str):
        self.boundary = "=_tidings_" + secrets.token_hex(12)  # '=_' never occurs in QP bodies
        self.from_line = fold_header("From", from_addr)
        # None: a personalised subject, whose line each message() call brings.
        self.subject_line = fold_header("Subject", subject) if subject is not None else None
        self.list_id_line = fold_header("List-Id", list_id) if list_id else b""
        b = self.boundary.encode()
        self.tail_headers = (
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            b'Content-Type: multipart/alternative; boundary="' + b + b'"\r\n\r\n'
            b"--" + b + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self.between = (
            b"\r\n--" + b + b"\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self.end = b"\r\n--" + b + b"--\r\n"

    def message(
        self,
        *,
        to: str,
        message_id: str,
        unsubscribe_url: str,
        text: bytes,
        html: bytes,
        subject_line: bytes | None = None,
    ) -> bytes:
        """The whole message: headers, then text/plain and text/html, CRLF throughout."""
        subject_line = subject_line or self.subject_line
        if subject_line is None:
            raise HeaderError("a personalised subject needs its subject line")
        for value, what in ((message_id, "Message-ID"), (unsubscribe_url, "unsubscribe URL")):
            check_header_value(value, what)
        if " " in unsubscribe_url or ">" in unsubscribe_url:
            raise HeaderError("the unsubscribe URL must not contain spaces or '>'")
        to_bytes = to.encode("utf-8")  # ASCII unless the address itself is internationalised
        return b"".join((
            b"Date: ", date_header(), b"\r\n", self.from_line,
            b"To: ", to_bytes, b"\r\n", subject_line,
            b"Message-ID: ", message_id.encode("ascii"), b"\r\n",
            b"MIME-Version: 1.0\r\n", self.list_id_line,
            b"List-Unsubscribe: <", unsubscribe_url.encode("ascii"), b">\r\n",
            self.tail_headers, text, self.between, html, self.end,
        ))  # fmt: skip


def simple_message(
    *, from_addr: str, to: str, subject: str, message_id: str, text: str, html: str
) -> bytes:
    """A one-off multipart/alternative message (confirmations): same encoding, no list headers."""
    boundary = ("=_tidings_" + secrets.token_hex(12)).encode()
    return b"".join((
        b"Date: ", date_header(), b"\r\n", fold_header("From", from_addr),
        b"To: ", to.encode("utf-8"), b"\r\n", fold_header("Subject", subject),
        fold_header("Message-ID", message_id), b"MIME-Version: 1.0\r\n",
        b"Auto-Submitted: auto-generated\r\n",
        b'Content-Type: multipart/alternative; boundary="', boundary, b'"\r\n\r\n',
        b"--", boundary, b"\r\nContent-Type: text/plain; charset=utf-8\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n", qp(text),
        b"\r\n--", boundary, b"\r\nContent-Type: text/html; charset=utf-8\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n", qp(html),
        b"\r\n--", boundary, b"--\r\n",
    ))  # fmt: skip
