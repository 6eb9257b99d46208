"""Address ranges of known prefetchers (Apple's), looked up fast in lists of any size.

The built-in list (apple_prefetch_ranges.txt) is small and reviewed. Apple publishes the
whole iCloud Private Relay egress list, through which Mail Privacy Protection fetches
(https://mask-api.icloud.com/egress-ip-ranges.csv, some 300,000 lines of
`prefix,country,region,city,`); `tidings engagement ranges --fetch URL | --file PATH`
writes it to var/prefetch-ranges.txt, and TIDINGS_PREFETCH_RANGES_FILE names another
file. All are read together, merged into sorted non-overlapping integer ranges per IP
version, and an address is found by one bisect: a few microseconds whatever the size.
"""

from __future__ import annotations

import os
import socket
from bisect import bisect_right
from collections.abc import Iterable
from pathlib import Path

BUILT_IN = Path(__file__).with_name("apple_prefetch_ranges.txt")
VAR_FILE = "prefetch-ranges.txt"  # under TIDINGS_VAR_DIR, written by the CLI
ENV = "TIDINGS_PREFETCH_RANGES_FILE"
_FAMILIES = {4: (socket.AF_INET, 32), 6: (socket.AF_INET6, 128)}


def parse_prefix(text: str) -> tuple[int, int, int] | None:
    """(version, first, last) of `a.b.c.d/n`, `x::/n` or a bare address; None if not one."""
    address, _, length = text.strip().partition("/")
    version = 6 if ":" in address else 4
    family, bits = _FAMILIES[version]
    try:
        value = int.from_bytes(socket.inet_pton(family, address), "big")
        size = int(length) if length else bits
    except (OSError, ValueError):
        return None
    if not 0 <= size <= bits:
        return None
    span = (1 << (bits - size)) - 1
    first = value & ~span
    return version, first, first | span


def prefixes(lines: Iterable[str]) -> Iterable[str]:
    """The prefix of each line: one per line or the first CSV field; # starts a comment."""
    for line in lines:
        text = line.split("#", 1)[0].split(",", 1)[0].strip()
        if text:
            yield text


class Ranges:
    """Sorted, merged (first, last) ranges per IP version; `address in ranges`."""

    def __init__(self, ranges: Iterable[tuple[int, int, int]] = ()) -> None:
        found: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for version, first, last in ranges:
            found[version].append((first, last))
        self.starts: dict[int, list[int]] = {}
        self.ends: dict[int, list[int]] = {}
        for version, pairs in found.items():
            starts: list[int] = []
            ends: list[int] = []
            self.starts[version], self.ends[version] = starts, ends
            for first, last in sorted(pairs):
                if ends and first <= ends[-1] + 1:
                    ends[-1] = max(ends[-1], last)  # overlapping or adjacent: one range
                else:
                    starts.append(first)
                    ends.append(last)

    def __len__(self) -> int:
        return len(self.starts[4]) + len(self.starts[6])

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        try:
            if ":" in address:
                value, version = int.from_bytes(socket.inet_pton(socket.AF_INET6, address)), 6
                if value >> 32 == 0xFFFF:  # ::ffff:a.b.c.d, an IPv4 client on a v6 socket
                    value, version = value & 0xFFFFFFFF, 4
            else:
                value, version = int.from_bytes(socket.inet_pton(socket.AF_INET, address)), 4
        except OSError:
            return False
        starts = self.starts[version]
        i = bisect_right(starts, value) - 1
        return i >= 0 and value <= self.ends[version][i]


def read(paths: Iterable[Path]) -> Ranges:
    """The ranges in these files together (a file that does not exist adds nothing)."""
    found: list[tuple[int, int, int]] = []
    for path in paths:
        if path.is_file():
            with path.open(encoding="utf-8", errors="replace") as lines:
                found.extend(r for r in map(parse_prefix, prefixes(lines)) if r is not None)
    return Ranges(found)


def sources(var_dir: Path | None) -> list[Path]:
    """Where the ranges are read from: the built-in list, var/'s, the environment's."""
    paths = [BUILT_IN]
    if var_dir is not None:
        paths.append(Path(var_dir) / VAR_FILE)
    if os.environ.get(ENV):
        paths.append(Path(os.environ[ENV]))
    return paths


_loaded: dict[tuple[tuple[str, float], ...], Ranges] = {}


def load(var_dir: Path | None) -> Ranges:
    """The ranges of `sources(var_dir)`, read again only when one of the files changes."""
    key = tuple((str(p), p.stat().st_mtime if p.is_file() else -1.0) for p in sources(var_dir))
    found = _loaded.get(key)
    if found is None:
        _loaded.clear()
        found = _loaded[key] = read(Path(p) for p, _ in key)
    return found
