"""The memo of the per-body steps: same bytes as without it, bounded, keyed by every input."""

from __future__ import annotations

import pytest

from app.issues import layout, rendering
from app.issues.memo import BoundedMemo, text_size
from app.issues.rendering import BodyError, IssueContent, compile_issue, validate_issue
from app.issues.templating import marker

BODY = """# Hello {{ subscriber.name }}

A [link](https://example.org/a?b=1&c=2) and ![a chart](https://cdn.example.org/c.png).

- one
  - nested
- two

<img src="https://cdn.example.org/wide.png" width="900"><script>alert(1)</script>
"""
SKELETON = BODY.replace("{{ subscriber.name }}", marker("B", 0))
CSS = "p { color: #333333; } a { color: #0645ad; }"


def content(body: str = BODY) -> IssueContent:
    return IssueContent(id=3, subject="Winter", preheader="", from_addr="N <n@example.org>",
                        template="newsletter", format="markdown", body=body,
                        list_id="News <news.example.org>", list_names=("News",))  # fmt: skip


def parts(body: str = BODY) -> tuple[str, str]:
    compiled = compile_issue(content(body), archive_url="https://x.example/archive/3",
                             site_url="https://x.example")  # fmt: skip
    sample = compiled._sample
    return compiled.render_html(sample), compiled.render_text(sample)


def test_memoized_body_is_the_computed_one() -> None:
    layout.body_memo.clear()
    first = layout.body_fragment(SKELETON, "markdown", CSS)
    again = layout.body_fragment(SKELETON, "markdown", CSS)
    assert again is first  # served from the memo
    assert first == layout._body_fragment(SKELETON, "markdown", CSS)  # the same bytes
    assert "<script" not in first[0] and 'width="560"' in first[0]


def test_every_input_is_part_of_the_key() -> None:
    layout.body_memo.clear()
    base = layout.body_fragment(SKELETON, "markdown", CSS)
    assert layout.body_fragment(SKELETON + "\nmore", "markdown", CSS) != base
    assert layout.body_fragment(SKELETON, "html", CSS) != base
    assert layout.body_fragment(SKELETON, "markdown", "") != base
    assert layout.body_fragment(SKELETON, "markdown", CSS) == base
    assert len(layout.body_memo) == 4


def test_a_compile_after_validation_reuses_its_body_and_sends_the_same_bytes() -> None:
    layout.body_memo.clear()
    uncached = parts()
    layout.body_memo.clear()
    validate_issue(subject="Winter", preheader="", from_addr="N <n@example.org>",
                   template="newsletter", format="markdown", body=BODY)  # fmt: skip
    hits, compiled = layout.body_memo.hits, rendering._body_templates.hits
    assert parts() == uncached
    assert layout.body_memo.hits == hits + 1  # the compile did not render the body again
    assert rendering._body_templates.hits == compiled + 1  # nor compile its template
    edited = parts(BODY + "\nOne more word.")
    assert "One more word." in edited[0] and "One more word." in edited[1]


def test_a_failing_body_is_not_remembered() -> None:
    deep = "<div>" * 300 + "x" + "</div>" * 300
    for _ in range(2):
        with pytest.raises(BodyError, match="nests deeper"):
            layout.body_fragment(deep, "html", "")
    assert (deep, "html", "") not in layout.body_memo._entries


def test_a_kept_template_still_runs_its_limits_on_every_render() -> None:
    body = "{% for i in range(10**8) %}x{% endfor %}"
    for _ in range(2):  # the second validation gets the kept template, and is refused too
        with pytest.raises(BodyError, match="range"):
            validate_issue(subject="Winter", preheader="", from_addr="N <n@example.org>",
                           template="newsletter", format="markdown", body=body)  # fmt: skip
    assert (body, rendering.DYNAMIC_NAMES) in rendering._body_templates._entries


def test_the_memo_is_bounded_by_count_and_by_size() -> None:
    memo: BoundedMemo[str] = BoundedMemo(max_entries=3, max_chars=100)
    for k in "abcde":
        assert memo.get(k, lambda k=k: k * 10) == k * 10
    assert len(memo) == 3 and memo.chars == 3 * 11
    assert memo.get("c", lambda: "recomputed") == "c" * 10  # still there: the newest three
    assert memo.get("a", lambda: "recomputed") == "recomputed"  # the oldest went first
    memo.get("big", lambda: "x" * 77)  # 80 characters: two older entries make room
    assert memo.chars == 11 + 80 and len(memo) == 2
    assert memo.get("huge", lambda: "y" * 200) == "y" * 200  # returned, never kept
    assert "huge" not in memo._entries and memo.chars <= 100
    assert text_size(("ab", "c"), ("d", 3)) == 4
