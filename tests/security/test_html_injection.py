"""HTML/JS through names and attributes is escaped in emails and pages; no open redirects;
no CSV formula injection in exports."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from app import tokens
from app.models import Issue
from tests.conftest import AppClient
from tests.security.conftest import tried
from tests.security.routes import fill, routes
from tests.security.seed import make_list, make_subscriber

XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg/onload=alert(1)>",
    "' onmouseover='alert(1)",
    "<a href=javascript:alert(1)>x</a>",
    "</title><script>alert(1)</script>",
    "<!--<script>-->",
    "{{ 7*7 }}<b>bold</b>",
]


class _Markup(HTMLParser):
    """Collects the live elements and attributes that the payloads would create if unescaped."""

    def __init__(self, author: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.author = author  # the issue's author may use markup; only script may not survive
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        harmless_if_authored = tag in ("svg", "b") or (
            tag == "img" and dict(attrs).get("src") == "x"
        )
        if harmless_if_authored and not self.author:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") and "alert" in (value or ""):
                self.found.append(f"{tag} {name}=")
            if name in ("href", "src") and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}=javascript:")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and "alert(1)" in data:
            self.found.append("<script>alert(1)")


def live_markup(html: str, *, author: bool = False) -> list[str]:
    """Hostile markup that survived as real elements or attributes (not as escaped text)."""
    parser = _Markup(author)
    parser.feed(html)
    return parser.found


async def test_names_and_attributes_escaped_in_the_email(client: AppClient) -> None:
    """Subscriber name and attributes with markup: escaped in the HTML part (both formats)."""
    list_id = await make_list(client, "news")
    found = []
    for fmt, body in (
        ("html", "<p>Hi {{ subscriber.name }} from {{ subscriber.attributes.city }}</p>"),
        ("markdown", "Hi **{{ subscriber.name }}** from {{ subscriber.attributes.city }}"),
    ):
        r = await client.post(
            "/api/v1/issues", json={"subject": "S", "lists": ["news"], "format": fmt, "body": body}
        )
        assert r.status_code == 201, r.text
        for i, payload in enumerate(XSS):
            sub = await make_subscriber(
                client,
                f"x{fmt}{i}@example.org",
                name=payload,
                attributes={"city": payload},
                lists={list_id: "confirmed"},
            )
            tried("html", 2)
            html = (
                await client.get(
                    f"/api/v1/issues/{r.json()['id']}/preview",
                    params={"format": "html", "subscriber_id": sub},
                )
            ).text
            if live_markup(html):
                found.append((fmt, payload, live_markup(html)))
    assert not found, found


async def test_attribute_in_a_link_cannot_become_javascript(client: AppClient) -> None:
    """A per-subscriber URL cannot carry a javascript: scheme into the email."""
    list_id = await make_list(client, "news")
    body = '<p><a href="{{ subscriber.attributes.site }}">my site</a></p>'
    r = await client.post(
        "/api/v1/issues", json={"subject": "S", "lists": ["news"], "format": "html", "body": body}
    )
    assert r.status_code == 201, r.text
    sub = await make_subscriber(
        client, "js@example.org", attributes={"site": "javascript:alert(1)"},
        lists={list_id: "confirmed"},
    )  # fmt: skip
    tried("html")
    html = (
        await client.get(f"/api/v1/issues/{r.json()['id']}/preview", params={"subscriber_id": sub})
    ).text
    assert not re.search(r"href=[\"']?\s*javascript:", html, re.I)


async def test_public_sign_up_pages_escape_input(anon: AppClient) -> None:
    """The hosted form, its errors and the thank-you page never echo markup unescaped."""
    await make_list(anon, "news", name="News")
    html_accept = {"Accept": "text/html"}
    found = []
    for payload in XSS:
        pages = [
            await anon.get("/subscribe", params={"list": payload}),
            await anon.get("/subscribe/thanks", params={"status": payload}),
            await anon.post(
                "/api/v1/subscribe",
                data={"email": payload, "name": payload, "list": "news"},
                headers=html_accept,
            ),
            await anon.post(
                "/api/v1/subscribe",
                data={"email": "ok@example.org", "name": payload, "list": payload},
                headers=html_accept,
            ),
        ]
        tried("html", len(pages))
        for page in pages:
            assert page.status_code < 500
            if live_markup(page.text):
                found.append((str(page.url), payload, live_markup(page.text)))
    assert not found, found


async def test_unsubscribe_and_preference_pages_escape_names(anon: AppClient) -> None:
    """List names and descriptions with markup are escaped on the unsubscribe pages."""
    found = []
    secret = anon.app.state.settings.secret_key_value
    for i, payload in enumerate(XSS):
        list_id = await make_list(anon, f"l{i}", name=payload)
        sub = await make_subscriber(
            anon, f"u{i}@example.org", name=payload, lists={list_id: "confirmed"}
        )
        token = tokens.make(secret, "unsubscribe", sub, 0)
        for method, path in (("GET", f"/u/{token}"), ("GET", f"/preferences/{token}")):
            r = await anon.request(method, path)
            tried("html")
            assert r.status_code == 200, (path, r.status_code)
            if live_markup(r.text):
                found.append((path, payload, live_markup(r.text)))
    assert not found, found


async def _mark_sent(client: AppClient, issue_id: int) -> None:
    async with client.app.state.sessionmaker() as session:
        issue = await session.get(Issue, issue_id)
        assert issue is not None
        issue.status = "sent"  # the archive shows sent issues; how it got sent is not the point
        await session.commit()


async def test_archive_sanitises_and_holds_no_personal_data(client: AppClient) -> None:
    """A sent issue's body is sanitised on the public archive, which shows no one's data."""
    list_id = await make_list(client, "news")
    await make_subscriber(
        client, "reader@example.org", name=XSS[0], attributes={"city": XSS[1]},
        lists={list_id: "confirmed"},
    )  # fmt: skip
    found = []
    for i, payload in enumerate(XSS):
        for fmt in ("markdown", "html"):
            r = await client.post(
                "/api/v1/issues",
                json={
                    "subject": f"Issue {i}",
                    "lists": ["news"],
                    "format": fmt,
                    "body": "Dear {{ subscriber.name }} ({{ subscriber.email }}, "
                    "{{ subscriber.attributes.city }}), " + payload,
                },
            )
            tried("html")
            assert r.status_code == 201, r.text
            await _mark_sent(client, r.json()["id"])
            for path in ("/archive", f"/archive/{r.json()['id']}"):
                page = await client.get(path)
                assert page.status_code == 200, path
                if live_markup(page.text, author=True):
                    found.append((path, payload, live_markup(page.text, author=True)))
                assert "reader@example.org" not in page.text
    assert not found, found


async def test_subject_cannot_break_out_of_html_attributes(client: AppClient) -> None:
    """Markup in a subject stays text in the email and the archive: no live attributes."""
    await make_list(client, "news")
    found = []
    for payload in ('"><img src=x onmouseover=alert(1)>', "<img src=x onerror=alert(1)>"):
        r = await client.post(
            "/api/v1/issues",
            json={"subject": f"Issue {payload}", "lists": ["news"], "body": "Hello"},
        )
        tried("html")
        assert r.status_code == 201
        await _mark_sent(client, r.json()["id"])
        for path in (f"/api/v1/issues/{r.json()['id']}/preview", f"/archive/{r.json()['id']}"):
            text = (await client.get(path)).text
            if live_markup(text):
                found.append((path, payload, live_markup(text)))
    assert not found, found


REDIRECT_PARAMS = ["next", "redirect", "redirect_uri", "return_to", "url", "continue", "to"]
EVIL = "https://evil.example/phish"


def _off_site(location: str) -> bool:
    parts = urlsplit(location)
    return bool(parts.netloc) and parts.netloc not in ("tidings.test",)


async def test_no_open_redirects(anon: AppClient) -> None:
    """No route sends a browser to a URL taken from the request."""
    await make_list(anon, "news")
    checked = redirects = 0
    offenders = []
    for method, path in routes(anon.app):
        if (
            method not in ("GET", "POST")
            or path.startswith("/api/v1/")
            and path != ("/api/v1/subscribe")
        ):
            continue
        params = {p: EVIL for p in REDIRECT_PARAMS}
        data = {"email": "r@example.org", "list": "news", **params}
        r = await anon.request(
            method,
            fill(path),
            params=params,
            data=data if method == "POST" else None,
            headers={"Accept": "text/html", "Referer": EVIL},
        )
        checked += 1
        tried("redirect")
        if 300 <= r.status_code < 400:
            redirects += 1
            if _off_site(r.headers.get("location", "")):
                offenders.append((method, path, r.headers["location"]))
    for tricky in ("//evil.example/", "/\\evil.example/", "/%2F%2Fevil.example/"):
        r = await anon.get(tricky)
        tried("redirect")
        if 300 <= r.status_code < 400 and _off_site(r.headers.get("location", "")):
            offenders.append(("GET", tricky, r.headers["location"]))
    print(f"\nopen redirects: {checked} routes tried, {redirects} redirected, all on-site")
    assert redirects >= 1  # the sign-up form's 303 was exercised
    assert not offenders, offenders


FORMULA = ['=HYPERLINK("https://evil.example","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)"]


async def test_no_csv_formula_injection_in_exports(client: AppClient) -> None:
    """Every admin GET: if it answers CSV, no cell starts a formula; JSON is not affected."""
    list_id = await make_list(client, "news")
    ids = []
    for i, payload in enumerate(FORMULA):
        ids.append(
            await make_subscriber(
                client,
                f"f{i}@example.org",
                name=payload,
                attributes={"note": payload},
                lists={list_id: "confirmed"},
            )  # fmt: skip
        )
    csv_routes = []
    for method, path in routes(client.app):
        if method != "GET" or not path.startswith("/api/v1/"):
            continue
        for sid in ids[:1]:
            r = await client.get(fill(path, str(sid)))
            tried("csv")
            if "csv" in r.headers.get("content-type", ""):
                csv_routes.append(path)
                for line in r.text.splitlines()[1:]:
                    for cell in line.split(","):
                        assert not cell.strip('"').startswith(("=", "+", "-", "@")), (path, cell)
    export = (await client.get(f"/api/v1/subscribers/{ids[0]}/export")).json()
    assert FORMULA[0] in str(export)  # JSON keeps the text as data: no formula context
    print(f"\nCSV exports found: {csv_routes or 'none (the GDPR export is JSON)'}")
