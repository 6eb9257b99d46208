"""The newsletter layout in headless Chromium: no sideways scrolling from 320 px to desktop."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.issues.rendering import IssueContent, Recipient, compile_issue

pytestmark = pytest.mark.chromium
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

SECTION = """
## Section {n}

Paragraph with [a link](https://example.org/{n}) and [another](https://example.org/{n}/b),
some *emphasis* and **bold** text that runs long enough to wrap at narrow widths.

![Wide picture {n}](https://cdn.example.org/{n}.png)

- item one
  - nested one, [link](https://docs.example.org/{n})
    - deeper still
- item two

> A quotation in section {n}.
"""
WIDE_TABLE = (
    "| "
    + " | ".join(f"Column {i}" for i in range(12))
    + " |\n"
    + "|"
    + "---|" * 12
    + "\n"
    + "| "
    + " | ".join(f"value-{i}-abcdefghij" for i in range(12))
    + " |\n"
)
LONG_URL = "https://example.org/" + "averyveryverylongpathsegment" * 12
BODY = (
    "# Hello {{ subscriber.name }}\n"
    + "".join(SECTION.format(n=n) for n in range(6))
    + f"\nA long unbroken URL written out: {LONG_URL}\n\n"
    + '<img src="https://cdn.example.org/wide.png" width="1400" height="300">\n\n'
    + WIDE_TABLE
)


def _chromium_or_skip() -> None:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        message = "install Debian's chromium package (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


async def test_no_horizontal_overflow(tmp_path: Path) -> None:
    _chromium_or_skip()
    from playwright.async_api import async_playwright

    issue = compile_issue(
        IssueContent(
            id=1, subject="Layout check", preheader="Checking widths",
            from_addr="News <news@example.org>", template="newsletter", format="markdown",
            body=BODY, list_id="News <news.example.org>",
        ),
        archive_url="https://news.example.org/archive/1",
    )  # fmt: skip
    html = issue.render_html(
        Recipient(
            email="a@example.com", name="Reader", attributes={},
            unsubscribe_url="https://news.example.org/u/t", preferences_url="https://news.example.org/p/t",
            message_id="<1@example.org>",
        )
    )  # fmt: skip
    page_file = tmp_path / "issue.html"
    page_file.write_text(html)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            # Images are remote; keep the test offline and deterministic.
            await page.route(
                "**/*",
                lambda route: (
                    route.abort() if route.request.url.startswith("http") else route.continue_()
                ),
            )
            for width in (320, 375, 600, 1024):
                await page.set_viewport_size({"width": width, "height": 800})
                await page.goto(page_file.as_uri())
                scroll, inner = await page.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]"
                )
                assert scroll <= inner, f"horizontal overflow at {width}px: {scroll} > {inner}"
                column = await page.evaluate(
                    "Math.max(...[...document.querySelectorAll('.card')]"
                    ".map(e => e.getBoundingClientRect().width))"
                )
                assert 0 < column <= 600, f"content column {column}px at {width}px"
                assert column >= min(width, 600) - 1
        finally:
            await browser.close()
