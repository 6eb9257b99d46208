"""The renderer's bytes, parsed back with Python's email package."""

from __future__ import annotations

import email.policy
import html as htmllib
import re
import time
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.config import settings
from app.delivery.dkim import DkimSigner
from app.issues.rendering import (
    BodyError,
    HeaderError,
    IssueContent,
    Recipient,
    compile_issue,
    render_system_email,
    validate_issue,
)

BODY = """# Hello {{ subscriber.name }}

Some *emphasis*, **strong** and [a link](https://example.org/read?a=1&b=2).

![A chart](https://cdn.example.org/chart.png)

- one
  - nested {{ subscriber.attributes.city | default('friend') }}
- two

1. first
2. second

> Quoted wisdom.

| Name | Value |
|------|-------|
| a    | 1     |

<img src="https://cdn.example.org/noalt.png">
<script>alert('x')</script><form action="/x"><input name=a></form>
<iframe src="https://evil.example"></iframe><a href="#" onclick="evil()">click</a>
<p style="width: expression(alert(1))">styled</p>

[Manage]({{ preferences_url }})
"""
ARCHIVE = "https://news.example.org/archive/7"


def content(body: str = BODY, **kw: object) -> IssueContent:
    base = dict(
        id=7, subject="Grüße: week 12", preheader="The hidden preheader text",
        from_addr="Wöchentlich News <news@example.org>", template="newsletter",
        format="markdown", body=body, list_id="Weekly <weekly.example.org>",
        list_names=("Weekly",),
    )  # fmt: skip
    base.update(kw)
    return IssueContent(**base)  # type: ignore[arg-type]


def recipient(name: str = "Zoë Müller", **kw: object) -> Recipient:
    base = dict(
        email="zoe@example.com", name=name, attributes={"city": "Zürich"},
        unsubscribe_url="https://news.example.org/u/tok123",
        preferences_url="https://news.example.org/p/tok123", message_id="<d1.7@example.org>",
    )  # fmt: skip
    base.update(kw)
    return Recipient(**base)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=email.policy.default).parsebytes(raw)  # type: ignore[return-value]


def parts(raw: bytes) -> tuple[str, str]:
    msg = parse(raw)
    plain, html = list(msg.iter_parts())
    # Parts travel in canonical CRLF form; the preview functions return Python's \n.
    return plain.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


@pytest.fixture(scope="module")
def issue():
    return compile_issue(content(), archive_url=ARCHIVE)


def test_structure_and_headers(issue) -> None:
    raw = issue.render_message(recipient())
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # RFC 2047: headers are ASCII
    assert "=?utf-8?" in head
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    for part in msg.iter_parts():
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg["Subject"] == "Grüße: week 12"
    assert msg["From"].addresses[0].display_name == "Wöchentlich News"
    assert msg["From"].addresses[0].addr_spec == "news@example.org"
    assert msg["To"].addresses[0].display_name == "Zoë Müller"
    assert msg["To"].addresses[0].addr_spec == "zoe@example.com"
    assert msg["Message-ID"] == "<d1.7@example.org>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Id"] == "Weekly <weekly.example.org>"
    assert msg["List-Unsubscribe"] == "<https://news.example.org/u/tok123>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Date"].datetime is not None
    assert "Return-Path" not in msg


def test_qp_lines_and_roundtrip(issue) -> None:
    r = recipient(attributes={"city": "Zürich " + "x" * 200})
    raw = issue.render_message(r)
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    plain, html = parts(raw)
    assert html == issue.render_html(r)
    assert plain == issue.render_text(r)


def test_message_id_passthrough_and_unique(issue) -> None:
    a = parse(issue.render_message(recipient(message_id="<a@example.org>")))
    b = parse(issue.render_message(recipient(message_id="<b@example.org>")))
    assert (a["Message-ID"], b["Message-ID"]) == ("<a@example.org>", "<b@example.org>")


def test_hostile_names_are_escaped_and_kept_out_of_headers(issue) -> None:
    raw = issue.render_message(recipient(name="<script>alert(1)</script>"))
    plain, html = parts(raw)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Hello <script>alert(1)</script>" in plain  # text is not HTML-escaped
    raw = issue.render_message(recipient(name="Bob\r\nBcc: x@y"))
    msg = parse(raw)
    assert "Bcc" not in msg and msg["To"].addresses[0].display_name == "Bob Bcc: x@y"
    assert b"\r\nBcc:" not in raw


def test_header_injection_refused_at_validate() -> None:
    for field in ("subject", "from_addr"):
        kw = dict(subject="Hi", preheader="", from_addr="A <a@example.org>",
                  template="newsletter", format="markdown", body="x")  # fmt: skip
        kw[field] = kw[field] + "\r\nBcc: x@y"
        with pytest.raises(HeaderError):
            validate_issue(**kw)
    with pytest.raises(HeaderError):
        validate_issue(subject="Hi", preheader="", from_addr="not an address",
                       template="newsletter", format="markdown", body="x")  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__ }}",
        "{{ subscriber.__init__ }}",
        "{{ subscriber['__class__'] }}",
        "{{ subscriber | attr('__class__') }}",
        "{{ subscriber.attributes.pop('x') }}",
        "{% include 'x' %}",
        "{% if %}",
        "{{ x | nosuchfilter }}",
    ],
)
def test_sandbox_escapes_and_broken_bodies_refused(body: str) -> None:
    with pytest.raises(BodyError):
        validate_issue(subject="Hi", preheader="", from_addr="A <a@example.org>",
                       template="newsletter", format="markdown", body=body)  # fmt: skip


def test_unknown_template_refused() -> None:
    with pytest.raises(BodyError):
        validate_issue(subject="Hi", preheader="", from_addr="A <a@example.org>",
                       template="../etc", format="html", body="x")  # fmt: skip


def test_markdown_features_and_sanitising(issue) -> None:
    html = issue.render_html(recipient())
    body = html[html.index("<body") :]
    for pattern in (r"<h1[^>]*>Hello Zo", r"<em>emphasis</em>", r"<strong>strong</strong>",
                    r"<ul[^>]*>\s*<li[^>]*>one\s*<ul", r"<ol", r"<blockquote", r"<table[^>]*>",
                    r'href="https://example.org/read\?a=1&amp;b=2"', r'alt="A chart"'):  # fmt: skip
        assert re.search(pattern, body), pattern
    lower = body.lower()
    for banned in ("<script", "<form", "<input", "<iframe", "onclick", "expression("):
        assert banned not in lower, banned
    assert all(re.search(r"\salt=", tag) for tag in re.findall(r"<img\b[^>]*>", html))
    assert "nested Zürich" in body


def test_layout_requirements(issue) -> None:
    html = issue.render_html(recipient())
    assert '<meta name="color-scheme"' in html and "supported-color-schemes" in html
    assert re.search(r'<div style="display:none[^"]*">The hidden preheader text', html)
    assert not re.search(r"<link\b|@import", html, re.I)
    assert "<script" not in html.lower()
    assert "max-width:600px" in html
    assert "@media" in html  # kept by css-inline
    assert 'href="https://news.example.org/u/tok123"' in html  # visible unsubscribe link
    assert 'href="https://news.example.org/p/tok123"' in html
    assert len(html.encode()) < 102 * 1024


def test_text_part_is_readable_with_urls(issue) -> None:
    text = issue.render_text(recipient())
    assert "a link (https://example.org/read?a=1&b=2)" in text
    assert "Unsubscribe: https://news.example.org/u/tok123" in text
    assert "- one\n  - nested Zürich\n- two" in text
    assert "1. first\n2. second" in text
    assert "> Quoted wisdom." in text
    assert "Name | Value" in text
    assert "<" not in text.replace("<script>", "")


def undated(raw: bytes) -> bytes:
    """The message without its Date header: two renders may straddle a second."""
    return re.sub(rb"(?m)^Date: [^\r\n]*\r\n", b"", raw, count=1)


def test_fast_path_equals_slow_path(issue) -> None:
    assert issue.fast
    for r in (recipient(), recipient(name='A & <b>"quoted"', attributes={})):
        fast = issue.render_message(r)
        slow = issue.render_message(r, force_slow=True)
        assert undated(fast) == undated(slow)


def test_control_flow_on_subscriber_takes_slow_path() -> None:
    body = "{% if subscriber.attributes.vip %}VIP {{ subscriber.name }}{% else %}Hi{% endif %}"
    slow = compile_issue(content(body), archive_url=ARCHIVE)
    assert not slow.fast
    assert "VIP Zoë Müller" in slow.render_text(recipient(attributes={"vip": True}))
    assert "VIP" not in slow.render_text(recipient(attributes={}))


def test_render_time_failure_never_crashes() -> None:
    body = "Total: {{ subscriber.attributes.n + 1 }}"
    compiled = compile_issue(content(body), archive_url=ARCHIVE)
    raw = compiled.render_message(recipient(attributes={"n": "text"}))
    assert "Total:" in parts(raw)[0]


def test_subscriber_url_attribute_cannot_smuggle_javascript() -> None:
    body = '<a href="{{ subscriber.attributes.site }}">site</a>'
    compiled = compile_issue(content(body, format="html"), archive_url=ARCHIVE)
    html = compiled.render_html(recipient(attributes={"site": "javascript:alert(1)"}))
    assert "javascript:" not in html


def test_archive_has_no_personal_data(issue) -> None:
    html = issue.render_archive_html()
    assert "tok123" not in html and "Zoë" not in html


def test_system_email() -> None:
    raw = render_system_email(
        "confirm", to_email="new@example.com", to_name="Ново", from_addr="News <news@example.org>",
        context={"confirm_url": "https://news.example.org/c/abc", "lists": ["Weekly"]},
    )  # fmt: skip
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["To"].addresses[0].display_name == "Ново"
    assert msg["Message-ID"] and msg["Date"]
    plain, html = parts(raw)
    assert "https://news.example.org/c/abc" in plain and "Weekly" in plain
    assert 'href="https://news.example.org/c/abc"' in html
    # Nothing sends a goodbye on unsubscribe (the page says it is done): no such template.
    with pytest.raises(FileNotFoundError):
        render_system_email("goodbye", to_email="a@example.com", to_name="",
                            from_addr="News <news@example.org>", context={})  # fmt: skip


def test_dkim_sign_and_verify(issue) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"sel._domainkey.example.org."
        return record

    signed = DkimSigner(domain="example.org", selector="sel", private_key_pem=pem).sign(
        issue.render_message(recipient())
    )
    assert dkim.verify(signed, dnsfunc=dns)
    h = re.search(rb"\bh=([^;]+)", signed.split(b"\r\n\r\n")[0].replace(b"\r\n ", b"")).group(1)
    signed_headers = {x.strip().lower() for x in h.replace(b" ", b"").split(b":")}
    for name in (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                 b"list-id", b"list-unsubscribe", b"list-unsubscribe-post"):  # fmt: skip
        assert name in signed_headers
    tampered = signed.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                              b"List-Unsubscribe-Post: nope")  # fmt: skip
    assert not dkim.verify(tampered, dnsfunc=dns)


PERSONAL = "Hi {{ subscriber.name }}: {{ issue.subject | length }} chars, issue {{ issue.id }}"
HOSTILE_NAMES = {
    "Zoë Müller": "Zoë Müller",
    "Bob": "Bob",
    "Bob\r\nBcc: x@y\r\n\r\nbody": "Bob Bcc: x@y body",
    "<script>alert(1)</script>": "<script>alert(1)</script>",
    "=?utf-8?q?Boss?=": "=?utf-8?q?Boss?=",
    "Ann" + " long" * 40: "Ann" + " long" * 40,
    "Zoë " + "ü" * 90: "Zoë " + "ü" * 90,
}


def subject_lines(raw: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    field = re.search(rb"^Subject:.*?(?=\r\n(?! ))", head, re.M | re.S)
    assert field is not None
    return field[0].split(b"\r\n")


@pytest.mark.parametrize("name", list(HOSTILE_NAMES))
def test_personalised_subject_per_recipient(name: str) -> None:
    compiled = compile_issue(content(subject=PERSONAL), archive_url=ARCHIVE)
    assert compiled.fast
    expected = f"Hi {HOSTILE_NAMES[name]}: {len(PERSONAL)} chars, issue 7"
    r = recipient(name=name)
    raw = compiled.render_message(r)
    assert undated(raw) == undated(compiled.render_message(r, force_slow=True))
    assert all(len(line) <= 78 and line.isascii() for line in subject_lines(raw))
    msg = parse(raw)
    assert msg["Subject"] == expected and "Bcc" not in msg
    assert not msg.defects and not msg["Subject"].defects
    plain, html = parts(raw)
    assert f"<title>{htmllib.escape(expected, quote=False)}</title>" in html
    assert "<script" not in html.lower()
    assert f"\n{expected}\n{'=' * min(len(expected), 76)}\n" in plain


def test_personalised_subject_fails_soft_and_takes_slow_path() -> None:
    failing = compile_issue(content(subject="Total {{ subscriber.attributes.n + 1 }}!"),
                            archive_url=ARCHIVE)  # fmt: skip
    assert parse(failing.render_message(recipient(attributes={"n": "x"})))["Subject"] == "Total !"
    assert parse(failing.render_message(recipient(attributes={"n": 2})))["Subject"] == "Total 3!"
    vip = "{% if subscriber.attributes.vip %}VIP {% endif %}News for {{ subscriber.name }}"
    slow = compile_issue(content(subject=vip), archive_url=ARCHIVE)
    assert not slow.fast
    for attributes, expected in (({"vip": True}, "VIP News for Zoë Müller"),
                                 ({}, "News for Zoë Müller")):  # fmt: skip
        r = recipient(attributes=attributes)
        raw = slow.render_message(r)
        assert parse(raw)["Subject"] == expected and slow.render_subject(r) == expected
        assert f"<title>{expected}</title>" in parts(raw)[1]
        assert undated(raw) == undated(slow.render_message(r, force_slow=True))


def test_archive_and_body_see_the_rendered_subject() -> None:
    body = "Subject was: {{ issue.subject }}"
    compiled = compile_issue(content(body, subject="News for {{ subscriber.name or 'you' }}"),
                             archive_url=ARCHIVE)  # fmt: skip
    assert "Subject was: News for Zoë Müller" in compiled.render_text(recipient())
    assert compiled.render_archive_subject() == "News for you"
    archive = compiled.render_archive_html()
    assert "<title>News for you</title>" in archive and "Zoë" not in archive


@pytest.mark.parametrize("subject", ["Grüße: week 12", "Use {# and } literally", "{{ issue.id }}"])
def test_static_subject_is_one_precompiled_header(subject: str) -> None:
    from app.issues.mime import fold_header

    compiled = compile_issue(content(subject=subject), archive_url=ARCHIVE)
    expected = "7" if subject == "{{ issue.id }}" else subject
    header = fold_header("Subject", expected)
    for name in ("Zoë Müller", "Bob"):
        raw = compiled.render_message(recipient(name=name))
        assert header in raw and parse(raw)["Subject"] == expected
    assert f"<title>{expected}</title>" in compiled.render_html(recipient())


VALID = dict(preheader="", from_addr="A <a@example.org>", template="newsletter",
             format="markdown", body="x")  # fmt: skip


@pytest.mark.parametrize(
    "subject",
    ["Hi {{ ''.__class__ }}", "{{ subscriber.__init__ }}", "{{ subscriber | attr('__class__') }}",
     "{{ subscriber.attributes.pop('x') }}", "{% include 'x' %}", "Hi {% if %}",
     "{{ subscriber.name | nosuchfilter }}", "{{ issue.id + 'x' }}"],
)  # fmt: skip
def test_subject_sandbox_escapes_and_broken_subjects_refused(subject: str) -> None:
    with pytest.raises(HeaderError, match="^subject"):
        validate_issue(subject=subject, **VALID)


def test_personalised_subject_validates_and_line_breaks_stay_refused() -> None:
    validate_issue(subject="Hi {{ subscriber.name }}, {{ subscriber.attributes.city }}", **VALID)
    with pytest.raises(HeaderError):
        validate_issue(subject="Hi {{ subscriber.name }}\r\nBcc: x@y", **VALID)


class _Tags(HTMLParser):
    """Every start tag's attributes, as a browser's tokenizer would read them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


ATTRIBUTE_BREAKERS = ['"><img src=x onmouseover=alert(1)>', "' onfocus='alert(1)",
                      "<link rel=stylesheet href=//evil.example/x.css> @import 'y';"]  # fmt: skip


@pytest.mark.parametrize("payload", ATTRIBUTE_BREAKERS)
@pytest.mark.parametrize("personal", [False, True])
def test_subject_preheader_and_list_names_stay_inside_attributes(
    payload: str, personal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "organisation_name", f"Org {payload}")
    subject = ("{{ subscriber.name }} " if personal else "Issue ") + payload
    compiled = compile_issue(
        content("Hello", subject=subject, preheader=f"Pre {payload}", list_names=(payload,)),
        archive_url=ARCHIVE,
    )
    for html in (compiled.render_html(recipient()), compiled.render_archive_html()):
        tags = _Tags(html).tags
        assert all(not k.startswith("on") for _, attrs in tags for k in attrs), payload
        assert not any(tag == "link" or "src" in a and a["src"] == "x" for tag, a in tags)
        labels = [a["aria-label"] for _, a in tags if "aria-label" in a]
        assert labels and labels[0] is not None and labels[0].endswith(payload)
        assert all(re.search(r"\salt=", tag) for tag in re.findall(r"<img\b[^>]*>", html))


def test_body_images_get_alt_only_in_real_tags() -> None:
    body = ('<p title="<img src=x onerror=alert(1)>">t</p>'
            '<img src="https://cdn.example.org/wide.png" width="900" height="300">'
            '<img alt="kept" src="https://cdn.example.org/a.png" width="100">')  # fmt: skip
    html = compile_issue(content(body, format="html"), archive_url=ARCHIVE).render_html(recipient())
    tags = _Tags(html).tags
    assert not any("onerror" in a for _, a in tags)
    assert ("p", {"title": "<img src=x onerror=alert(1)>"}) in [
        (t, {k: v for k, v in a.items() if k == "title"}) for t, a in tags if t == "p"
    ]
    images = {a["src"]: a for t, a in tags if t == "img" and "cdn.example.org" in (a["src"] or "")}
    wide = images["https://cdn.example.org/wide.png"]
    assert wide["alt"] == "" and wide["width"] == "560" and "height" not in wide
    assert images["https://cdn.example.org/a.png"]["alt"] == "kept"


def test_every_body_image_gets_a_width_that_fits_the_column() -> None:
    body = ('<img src="https://e.org/unknown.png">'
            '<img src="https://e.org/small.png" width="100" height="40">'
            '<img src="https://e.org/styled.png" style="width: 300px">'
            '<img src="https://e.org/wide.png" width="900" height="3" style="padding:2px">'
            )  # fmt: skip
    html = compile_issue(content(body, format="html"), archive_url=ARCHIVE).render_html(recipient())
    images = {
        a["src"]: a for t, a in _Tags(html).tags if t == "img" and "e.org/" in (a["src"] or "")
    }
    sizes = {src.rsplit("/", 1)[1]: (a.get("width"), a.get("height")) for src, a in images.items()}
    assert sizes == {
        "unknown.png": ("560", None),  # unknown: the column, never its natural size
        "small.png": ("100", "40"),  # its own size, kept
        "styled.png": ("300", None),
        "wide.png": ("560", None),  # wider than the column: the column, height dropped
    }
    for attrs in images.values():
        style = (attrs["style"] or "").replace(" ", "")
        assert "max-width:100%" in style and "height:auto" in style, style
    assert "padding" in images["https://e.org/wide.png"]["style"]  # its own style kept


BOMBS = [
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{% set n = 7 ** 100000000 %}done",
    "{{ 'x'|center(10**9) }}{{ 'x'.ljust(10**9) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}",
    "{% set s = 'x' * 100000 %}{{ s.replace('', s) }}",
    "{{ '%(a)s%(a)s' % {'a': 'x' * 999999} }}{{ '{0}{0}'.format('x' * 999999) }}",
    "{% set s = 'x' * 999999 %}{% for i in range(10) %}{{ s }}{% endfor %}",
    "{% macro f(n) %}{% if n < 30 %}{{ f(n+1) }}{{ f(n+1) }}{% endif %}{% endmacro %}{{ f(0) }}",
    "{{ lipsum(10**6) }}",
]


@pytest.mark.parametrize("body", BOMBS)
def test_template_bombs_refused_at_validate_quickly(body: str) -> None:
    start = time.monotonic()
    with pytest.raises(BodyError, match="exceed|more than|longer than"):
        validate_issue(subject="Hi", preheader="", from_addr="A <a@example.org>",
                       template="newsletter", format="html", body=body)  # fmt: skip
    assert time.monotonic() - start < 5


def test_legitimate_operators_loops_and_formats_still_render() -> None:
    body = ("{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ '%05d' % 42 }} {{ '{:*>4}'.format('a') }} "
            "{% for i in range(3) %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %} "
            "{{ [1, 2] + [3] }} {{ 'a' ~ 'b' }} {{ 'a b'|replace(' ', '-') }}")  # fmt: skip
    compiled = compile_issue(content(body, format="html"), archive_url=ARCHIVE)
    assert "ababab 1024 00042 ***a 0,1,2 [1, 2, 3] ab a-b" in compiled.render_text(recipient())


def test_bombs_in_subscriber_data_never_hang_a_send() -> None:
    """Sizes from subscriber data: a fast-path slot renders empty, a slow path falls back."""
    fast = compile_issue(content("[{{ 'x' * subscriber.attributes.n }}]", format="html"),
                         archive_url=ARCHIVE)  # fmt: skip
    slow = compile_issue(
        content("{% for i in range(subscriber.attributes.n|default(2)) %}{% for j in range(9999) %}"
                "{% endfor %}{% endfor %}[done]", format="html"),
        archive_url=ARCHIVE,
    )  # fmt: skip
    assert fast.fast and not slow.fast
    start = time.monotonic()
    assert "[]" in parts(fast.render_message(recipient(attributes={"n": 10**9})))[0]
    assert "[done]" in parts(slow.render_message(recipient(attributes={"n": 10**4})))[0]
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(
    "body",
    ["{{ '{0.__class__}'.format('') }}", "{{ '{0:{1.__class__}}'.format(1, 2) }}",
     "{% set f = '{0[0].__init__.__globals__}' %}{{ f.format([cycler]) }}",
     "{{ '{x._private}'.format_map({'x': subscriber}) }}"],
)  # fmt: skip
def test_format_fields_reaching_internals_refused(body: str) -> None:
    with pytest.raises(BodyError, match="'_'"):
        validate_issue(subject="Hi", preheader="", from_addr="A <a@example.org>",
                       template="newsletter", format="html", body=body)  # fmt: skip
