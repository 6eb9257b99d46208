"""A small bounded memo for the pure, costly per-body steps of the renderer.

While an editor types, each autosave validates the body and the preview then compiles it:
both turn the same rendered body source into the same HTML and text (Markdown, the
nesting check, nh3, CSS inlining, image sizing, the text part), tens of milliseconds for a
newsletter. The steps are pure functions of their string inputs, so their results are kept
here, keyed by every input they read, and the second caller gets the first one's strings.

Bounded by count and by size (the characters of keys and values together: bodies run to
hundreds of KB), the least recently used going first. Only results are kept: a step that
raises is run again next time, so its error is raised again. One lock guards the table;
the step itself runs outside it, so two threads meeting one new key may both compute it,
which is harmless for a pure step (one result is kept, and both are equal).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


def text_size(*parts: object) -> int:
    """The characters of the strings in `parts` (nested tuples too): an entry's weight."""
    total = 0
    for part in parts:
        if isinstance(part, str):
            total += len(part)
        elif isinstance(part, tuple):
            total += text_size(*part)
    return total


class BoundedMemo(Generic[V]):
    """Results by key, at most `max_entries` of them and `max_chars` in all (LRU)."""

    def __init__(self, *, max_entries: int, max_chars: int) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The kept result for `key`, or `compute()` kept (when it fits) and returned."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found[0]
            self.misses += 1
        value = compute()
        self._put(key, value, text_size(key, value))
        return value

    def _put(self, key: Hashable, value: V, size: int) -> None:
        if size > self.max_chars:
            return  # larger than the whole memo: kept, it would only push everything out
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._chars -= old[1]
            self._entries[key] = (value, size)
            self._chars += size
            while len(self._entries) > self.max_entries or self._chars > self.max_chars:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._chars -= dropped

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def chars(self) -> int:
        """The characters held now (keys and values)."""
        return self._chars

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._entries.clear()
            self._chars = 0
