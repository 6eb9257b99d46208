"""Email addresses: validation, the normalised identity of a mailbox, and its hash."""

from __future__ import annotations

import hashlib

from email_validator import EmailNotValidError, validate_email


class InvalidAddress(ValueError):
    """The address is not a valid email address; the message says why."""


def normalize(raw: str, *, check_deliverability: bool = False) -> tuple[str, str]:
    """Validate `raw`; return (address to send to, key that identifies the mailbox).

    email-validator lowercases the domain and converts it from IDNA; the local part is
    kept as written for sending, while the key folds its case too, because in practice
    no mailbox provider treats `Ann@` and `ann@` as two people.
    """
    if not isinstance(raw, str) or "\r" in raw or "\n" in raw:
        raise InvalidAddress("an email address cannot contain line breaks")
    try:
        info = validate_email(raw.strip(), check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc
    return info.normalized, info.normalized.lower()


def email_key(raw: str) -> str:
    """The mailbox key of an address known to be valid, or a best effort for one that is not."""
    try:
        return normalize(raw)[1]
    except InvalidAddress:
        return raw.strip().lower()


def suppression_hash(key: str) -> str:
    """What the suppression list keeps of an erased address: a SHA-256 of its key."""
    return hashlib.sha256(key.encode()).hexdigest()
