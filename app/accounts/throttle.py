"""Sign-in throttling: failures counted per account and per client address."""

from __future__ import annotations

import time
from collections import deque

from app.errors import TooMany


class FailureCounter:
    """At most `limit` failures per key within `window` seconds; success clears the key.

    In memory, per process: behind several processes an attacker gets `limit` tries per
    process, still a few dozen an hour instead of thousands.
    """

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def check(self, key: str) -> None:
        """Raise TooMany while the key is over its limit."""
        failures = self._failures.get(key)
        if not failures:
            return
        now = time.monotonic()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) >= self.limit:
            raise TooMany(
                "too many sign-in attempts; wait a few minutes and try again",
                headers={"Retry-After": str(int(self.window))},
            )

    def fail(self, key: str) -> None:
        if key not in self._failures and len(self._failures) >= self.max_keys:
            self._failures.clear()  # a flood of keys: forget, rather than grow without end
        self._failures.setdefault(key, deque()).append(time.monotonic())

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class SignInThrottle:
    """The two counters every sign-in step consults: the account's and the address's."""

    def __init__(self, per_account: int = 5, per_address: int = 20, window: float = 900) -> None:
        self.accounts = FailureCounter(per_account, window)
        self.addresses = FailureCounter(per_address, window)

    def check(self, account_key: str, address: str) -> None:
        self.accounts.check(account_key)
        self.addresses.check(address)

    def fail(self, account_key: str, address: str) -> None:
        self.accounts.fail(account_key)
        self.addresses.fail(address)

    def succeed(self, account_key: str) -> None:
        self.accounts.clear(account_key)
