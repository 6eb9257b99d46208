"""The import's address fast path gives exactly email-validator's answers, errors included."""

from __future__ import annotations

import random
import string

import pytest

from app.subscribers.addresses import InvalidAddress, normalize
from app.subscribers.csvrows import ImportAddresses

LOCALS = ["ann", "Ann.Lee", "a..b", ".a", "a.", "Postmaster", "INFO", "x+tag", "o'neil",
          "a_b-c", "é", '"q"', "a b", "", "a" * 64, "a" * 65, "a" * 250, "ab@cd"]  # fmt: skip
DOMAINS = ["example.com", "Example.COM", "EXAMPLE.com.", "localhost", "a.test", "x.local",
           "xn--bcher-kva.example", "XN--BCHER-KVA.example", "bücher.example", "1.2.3.4",
           "[1.2.3.4]", "-a.com", "a-.com", "a..com", "com", "a.invalid", "a.onion",
           "example.123", "ex_ample.com", "a" * 63 + ".com", "a" * 64 + ".com",
           ("b" * 60 + ".") * 4 + "com", "sub.domain.co.uk", "a.arpa", "xn--zz.com"]  # fmt: skip
ODD = [" ann@example.com ", "ann@example.com\n", "\tAnn@Example.com", "ann@@example.com",
       "ann", "@example.com", "ann@", "Ann <ann@example.com>", "ann@example.com\r"]  # fmt: skip


def _answer(fn: object, raw: str) -> tuple[str, str]:
    try:
        return fn(raw)  # type: ignore[operator, no-any-return]
    except InvalidAddress as exc:
        return ("error", str(exc))


def _cases() -> list[str]:
    rnd = random.Random(6)
    cases = [f"{local}@{domain}" for local in LOCALS for domain in DOMAINS] + ODD
    chars = string.ascii_letters + string.digits + '.-_+@ "<>!#é'
    for _ in range(3000):
        local = "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 8)))
        domain = "".join(rnd.choice(string.ascii_letters + "0123456789.-") for _ in range(12))
        cases.append(f"{local}@{domain[: rnd.randint(0, 12)]}")
    return cases


@pytest.mark.parametrize("twice", [False, True], ids=["cold", "cached"])
def test_same_answers_as_email_validator(twice: bool) -> None:
    addresses = ImportAddresses(check_deliverability=False)
    cases = _cases()
    if twice:
        for raw in cases:
            _answer(addresses.normalize, raw)
    mismatches = [
        (raw, _answer(normalize, raw), _answer(addresses.normalize, raw))
        for raw in cases
        if _answer(normalize, raw) != _answer(addresses.normalize, raw)
    ]
    assert not mismatches, mismatches[:5]
    valid = sum(1 for raw in cases if _answer(normalize, raw)[0] != "error")
    assert valid > 150  # the comparison covers accepted addresses, not only refusals
