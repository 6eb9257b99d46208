"""Machine or person: each open and click judged on evidence, and the evidence kept.

Evidence, strongest first: the hidden link (no person can see or click it), a HEAD request
(browsers open links with GET), a security scanner's or bot's user agent (crawlerdetect,
a maintained list, plus the scanners and proxies it does not name), Apple's prefetch
ranges (ranges.py), several links of one message followed within BURST_SECONDS, and a hit sooner
after delivery than a person could read. Gmail's and Yahoo's image proxies fetch when a
person opens: a person's open, with no device known.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

from crawlerdetect import CrawlerDetect

from app.engagement.ranges import Ranges

BURST_SECONDS = 2.0
SOONEST = {"open": 2.0, "click": 5.0}  # seconds after delivery a person could act
_PERSON_PROXIES = ("GoogleImageProxy", "YahooMailProxy")
_SCANNERS = (
    "barracuda", "mimecast", "proofpoint", "safelinks", "safe links", "forcepoint",
    "symantec", "trend micro", "sophos", "zscaler", "fireeye", "cisco", "ironport",
    "messagelabs", "bitdefender", "kaspersky", "microsoft office protocol discovery",
    "python-requests", "go-http-client", "curl/", "wget/", "okhttp", "java/",
)  # fmt: skip


class Hit(NamedTuple):
    """One request to the pixel or a redirect, as it arrived.

    Its fields are strings and numbers only: the recorder buffers `tuple(hit)`, which the
    garbage collector stops tracking (recorder.py says why that matters).
    """

    kind: str  # open | click
    issue_id: int
    delivery_id: int
    link_idx: int  # 0 for the pixel
    at: float  # epoch seconds
    method: str
    user_agent: str
    address: str
    url: str = ""  # a click's target, from the issue's link table


@lru_cache(maxsize=1)
def _detector() -> CrawlerDetect:
    return CrawlerDetect()


def warm() -> None:
    """Compile crawlerdetect's patterns (~25 ms of CPU) ahead of the first verdict: the
    recorder runs this in a thread, not on the event loop. An instance of its own, so the
    shared detector's matches are never touched from two threads."""
    CrawlerDetect().isCrawler("warm-up")


@lru_cache(maxsize=4096)  # a send meets a few hundred agents; crawlerdetect costs ~80 µs
def _agent(user_agent: str) -> str | None:
    lowered = user_agent.lower()
    if not lowered.strip():
        return "no user agent"
    for name in _SCANNERS:
        if name in lowered:
            return name
    detector = _detector()
    if detector.isCrawler(user_agent):
        return str(detector.getMatches() or "crawler")
    return None


@lru_cache(maxsize=4096)
def _device(user_agent: str) -> str:
    lowered = user_agent.lower()
    for needle, device in (
        ("iphone", "iphone"),
        ("ipad", "ipad"),
        ("android", "android"),
        ("windows", "windows"),
        ("macintosh", "mac"),
        ("linux", "linux"),
    ):
        if needle in lowered:
            return device
    return "other"  # fmt: skip


def judge(
    hit: Hit, *, seconds_after: float | None, burst: bool, trap: bool, prefetchers: Ranges
) -> dict[str, Any]:
    """The verdict and its evidence: {"machine", "reasons", "device", ...}."""
    reasons: list[str] = []
    if hit.link_idx == 1 or trap:
        reasons.append("hidden-link")
    if hit.method == "HEAD":
        reasons.append("head-request")
    proxy = next((p for p in _PERSON_PROXIES if p in hit.user_agent), None)
    agent = None if proxy else _agent(hit.user_agent)
    if agent:
        reasons.append(f"user-agent:{agent[:60]}")
    if hit.address in prefetchers:
        reasons.append("apple-prefetch-range")
    if burst and hit.kind == "click":
        reasons.append(f"links-within-{BURST_SECONDS:g}s")
    if seconds_after is not None and seconds_after < SOONEST[hit.kind]:
        reasons.append(f"{seconds_after:.1f}s-after-delivery")
    evidence: dict[str, Any] = {
        "machine": bool(reasons),
        "reasons": reasons,
        "method": hit.method,
        "user_agent": hit.user_agent[:200],
        "seconds_after_delivery": None if seconds_after is None else round(seconds_after, 1),
    }
    # Through an image proxy, the device is the proxy's: not the reader's.
    evidence["device"] = None if proxy or reasons else _device(hit.user_agent)
    if proxy:
        evidence["via"] = proxy
    return evidence
