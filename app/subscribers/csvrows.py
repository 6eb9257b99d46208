"""Reading an import: CSV bytes in, validated rows out, one record at a time.

Validation is most of an import's CPU: email-validator costs ~37 us an address, most of it
checking the domain, which in a real list repeats (gmail.com, ...). `ImportAddresses`
checks each domain once with email-validator and answers the common shape of local part
(plain ASCII dot-atom) itself; anything else goes through email-validator whole, so the
result, and every error message, is the library's.
"""

from __future__ import annotations

import csv
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import (
    CASE_INSENSITIVE_MAILBOX_NAMES,
    DOT_ATOM_TEXT,
    EMAIL_MAX_LENGTH,
)

from app.subscribers.addresses import InvalidAddress, normalize

MAX_RECORD_CHARS = 1_000_000  # an unclosed quote must not swallow the rest of the file
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A dot-atom local part (email-validator's own pattern) and a domain of letters, digits,
# hyphens and dots only: such an address has exactly one "@", so email-validator splits it
# where we do and sees the same domain. One match for both halves.
assert DOT_ATOM_TEXT.pattern.endswith(r"\Z")
_PLAIN_ADDRESS = re.compile(
    f"(?P<local>{DOT_ATOM_TEXT.pattern[:-2]})@(?P<domain>[A-Za-z0-9.-]+)\\Z"
)
_DOMAIN_CACHE_SIZE = 10_000


class ImportFailed(Exception):
    """The file as a whole cannot be imported (no email column, not UTF-8 from the start)."""


class BadLine(Exception):
    """One record that cannot be read; the import goes on without it."""

    def __init__(self, line: int, error: str) -> None:
        super().__init__(error)
        self.line = line
        self.error = error


class ImportAddresses:
    """`normalize` for many addresses: each domain validated once, plain local parts inline."""

    def __init__(self, *, check_deliverability: bool) -> None:
        self.check_deliverability = check_deliverability
        # domain as written -> (normalised domain, the longest of its forms in the length
        # check: UTF-8 bytes of the IDNA-decoded one, or the ASCII one), or None if invalid
        self._domains: dict[str, tuple[str, int] | None] = {}

    def normalize(self, raw: str) -> tuple[str, str]:
        """As addresses.normalize; InvalidAddress with the library's message."""
        fast = None if self.check_deliverability else self._plain(raw)
        if fast is None:
            return normalize(raw, check_deliverability=self.check_deliverability)
        return fast, fast.lower()

    def _plain(self, raw: str) -> str | None:
        """The normalised address when it is of the plain shape and valid, else None."""
        if "\r" in raw or "\n" in raw:
            return None
        address = raw.strip()
        match = _PLAIN_ADDRESS.match(address)
        if match is None:
            return None
        local, domain = match.group("local", "domain")
        if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:  # the library lowercases these
            return None
        forms = self._domains[domain] if domain in self._domains else self._domain(domain)
        if forms is None:
            return None
        # email-validator's length check covers the address as given, normalised and with
        # the ASCII domain; the local part is ASCII here, the domain may be IDNA-decoded.
        if max(len(address), len(local) + 1 + forms[1]) > EMAIL_MAX_LENGTH:
            return None
        return f"{local}@{forms[0]}"

    def _domain(self, domain: str) -> tuple[str, int] | None:
        try:
            info = validate_email(f"a@{domain}", check_deliverability=False)
            longest = max(len(info.domain.encode()), len(info.ascii_domain))
            forms: tuple[str, int] | None = (info.domain, longest)
        except EmailNotValidError:
            forms = None
        if len(self._domains) >= _DOMAIN_CACHE_SIZE:
            self._domains.clear()  # a file of random domains gains nothing from keeping them
        self._domains[domain] = forms
        return forms


class _Feed:
    """The iterator csv.reader pulls from: lines of one complete record at a time."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if not self.lines:
            raise StopIteration
        return self.lines.popleft()


class RecordReader:
    """Turns byte chunks into (line number, fields) CSV records.

    Lines are split on LF, which never occurs inside a UTF-8 multi-byte sequence, and
    decoded one by one, so a bad byte costs one record rather than the decoder's state. A
    record is complete at the end of a line when its double quotes balance (CSV doubles a
    quote inside a quoted field), so csv.reader is only ever handed whole records.
    """

    def __init__(self) -> None:
        self._rest = b""
        self._line = 0
        self._start = 0
        self._open: list[str] = []
        self._chars = 0
        self._quotes = 0
        self._feed = _Feed()
        self._reader = csv.reader(self._feed)

    def feed(self, chunk: bytes) -> Iterator[tuple[int, list[str]] | BadLine]:
        data = self._rest + chunk
        end = data.rfind(b"\n")
        self._rest = data[end + 1 :]
        if end < 0:
            return
        whole = data[:end]
        if self._line == 0:  # the header, and its byte order mark, line by line
            first, more, whole = whole.partition(b"\n")
            yield from self._take(first)
            if not more:
                return
        text = None
        if not self._open and not self._feed.lines and b'"' not in whole:
            try:
                text = whole.decode("utf-8")
            except UnicodeDecodeError:
                pass
        if text is None:
            for raw in whole.split(b"\n"):
                yield from self._take(raw)
        else:
            yield from self._unquoted(text.split("\n"))

    def _unquoted(self, lines: list[str]) -> Iterator[tuple[int, list[str]] | BadLine]:
        """Lines without a double quote, all valid UTF-8: each is one record, so csv.reader
        reads them in one pass, with what `_take` would give for each (errors included)."""
        line = self._line
        self._line += len(lines)
        reader = csv.reader(lines)
        while True:
            line += 1
            try:
                yield line, next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield BadLine(line, f"not valid CSV: {exc}")

    def finish(self) -> Iterator[tuple[int, list[str]] | BadLine]:
        if self._rest:
            yield from self._take(self._rest)
            self._rest = b""
        if self._open:
            yield BadLine(self._start, "a quoted field is never closed")
            self._open = []

    def _take(self, raw: bytes) -> Iterator[tuple[int, list[str]] | BadLine]:
        self._line += 1
        if self._line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # the byte order mark Excel writes
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._open, self._quotes = [], 0
            yield BadLine(self._line, f"not UTF-8 (byte {exc.start + 1} of the line)")
            return
        if not self._open:
            self._start, self._chars = self._line, 0
        self._open.append(text + "\n")
        self._chars += len(text)
        self._quotes += text.count('"')
        if self._quotes % 2:
            if self._chars > MAX_RECORD_CHARS:
                self._open, self._quotes = [], 0
                yield BadLine(self._start, "a quoted field is never closed")
            return
        self._feed.lines.extend(self._open)
        self._open, self._quotes = [], 0
        try:
            yield self._start, next(self._reader)
        except (csv.Error, StopIteration) as exc:
            self._feed.lines.clear()
            yield BadLine(self._start, f"not valid CSV: {exc}")


@dataclass(slots=True)
class Row:
    line: int
    email: str
    key: str
    name: str | None  # None: no name given
    attributes: dict[str, str]


class Columns:
    """Where email and name are in the header; every other named column is an attribute."""

    def __init__(self, header: list[str], addresses: ImportAddresses) -> None:
        names = [h.strip() for h in header]
        lowered = [n.lower() for n in names]
        if "email" not in lowered:
            raise ImportFailed("the header row has no 'email' column")
        seen = [n for n in lowered if n]
        duplicates = sorted({n for n in seen if seen.count(n) > 1})
        if duplicates:
            raise ImportFailed(f"the header row repeats the column(s) {', '.join(duplicates)}")
        self.addresses = addresses
        self.width = len(names)
        self.email = lowered.index("email")
        self.name = lowered.index("name") if "name" in lowered else None
        self.attributes = [
            (i, n) for i, n in enumerate(names) if n and i not in (self.email, self.name)
        ]

    def row(self, line: int, fields: list[str]) -> Row:
        """A validated row; ValueError says what is wrong with it."""
        if len(fields) > self.width:
            raise ValueError(f"{len(fields)} fields, but the header has {self.width}")
        if len(fields) < self.width:
            fields = fields + [""] * (self.width - len(fields))
        try:
            email, key = self.addresses.normalize(fields[self.email])
        except InvalidAddress as exc:
            shown = fields[self.email].strip()[:100] or "(empty)"
            raise ValueError(f"invalid email address {shown!r}: {exc}") from None
        name = fields[self.name].strip() if self.name is not None else ""
        if len(name) > 200 or (not name.isprintable() and _CONTROL.search(name)):
            raise ValueError("the name has control characters or is over 200 characters")
        attributes = {}
        for i, n in self.attributes:
            value = fields[i].strip()
            if value:
                attributes[n] = value
        return Row(line, email, key, name or None, attributes)
