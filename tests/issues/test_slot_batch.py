"""Per recipient, an issue's slots are one Jinja render with repeated expressions evaluated
once: the bytes stay those of the slow path, a failing slot still renders empty alone, and
an expression that is not pure (the random filter, a call) is evaluated in each place."""

from __future__ import annotations

import email.policy
import html as htmllib
import re
from email.parser import BytesParser

from app.issues.rendering import IssueContent, Recipient, compile_issue

SITE = "https://news.example.org"


def _content(body: str) -> IssueContent:
    return IssueContent(
        id=3, subject="Week", preheader="", from_addr="News <news@example.org>",
        template="newsletter", format="markdown", body=body, list_id="News <news.example.org>",
    )  # fmt: skip


def _reader(name: str, **attributes: object) -> Recipient:
    return Recipient(
        email="ann@example.com", name=name, attributes=attributes,
        unsubscribe_url=f"{SITE}/u/T{len(name)}",
        preferences_url=f"{SITE}/preferences/P{len(name)}",
        message_id="<3.1@example.org>",
    )  # fmt: skip


def _parts(raw: bytes) -> tuple[str, str]:
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    plain, html = list(msg.iter_parts())  # type: ignore[attr-defined]
    return plain.get_content(), html.get_content()


def _undated(raw: bytes) -> bytes:
    return re.sub(rb"(?m)^Date: [^\r\n]*\r\n", b"", raw, count=1)


def test_repeats_and_a_failing_slot_render_as_the_slow_path_does() -> None:
    body = (
        "Hello {{ subscriber.name }}. [{{ subscriber.attributes.n + 1 }}]\n\n"
        "Again {{ subscriber.name }}, {{ subscriber.name | upper }}; "
        "[manage]({{ preferences_url }}) {{ subscriber.attributes.city | default('friend') }}\n"
    )
    compiled = compile_issue(_content(body), archive_url=f"{SITE}/archive/3", site_url=SITE)
    assert compiled.fast
    for reader in (_reader("Zoë <&>", n=1), _reader("Bo", n=1, city="Oslo")):
        fast = compiled.render_message(reader)
        assert _undated(fast) == _undated(compiled.render_message(reader, force_slow=True))
        text, html = _parts(fast)
        name = reader.name
        assert f"Hello {name}. [2]" in text and f"Again {name}, {name.upper()};" in text
        assert htmllib.escape(name) in html and f"Again {htmllib.escape(name)}," in html
        assert reader.preferences_url in html and reader.unsubscribe_url in html
    # One reader's failing slot is empty; the rest of their slots are theirs.
    text, html = _parts(compiled.render_message(_reader("Zoë", n="text")))
    assert "Hello Zoë. []" in text and "Again Zoë, ZOË;" in text and "friend" in text
    assert f"{SITE}/preferences/P3" in html


def test_the_random_filter_is_drawn_in_each_place() -> None:
    body = "A{{ subscriber.name | list | random }}|B{{ subscriber.name | list | random }}\n"
    compiled = compile_issue(_content(body), archive_url=f"{SITE}/archive/3", site_url=SITE)
    assert compiled.fast
    name = "abcdefghijklmnopqrstuvwxyz0123456789"
    pairs = set()
    for _ in range(20):
        text, _ = _parts(compiled.render_message(_reader(name)))
        found = re.search(r"A(.)\|B(.)", text)
        assert found is not None
        pairs.add(found[1] == found[2])
    # Drawn once for both places, they would be equal every time: (1/36)^20 by chance.
    assert False in pairs
