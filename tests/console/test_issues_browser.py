"""A comms officer's whole send in headless Chromium, against uvicorn with its dispatcher:
duplicate last month's issue, paste the newsletter, upload and insert a banner, preview
at 375 and 640 px, test-send to aiosmtpd, send to 700, pause, resume, read the report;
a viewer's view; axe-core; and a body built to attack the editor.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app import branding
from app.config import Settings
from app.issues import stored_layouts
from app.main import create_app
from app.models import Issue, IssueList, MailingList, Subscriber, Subscription
from tests.conftest import ADMIN_TOKEN
from tests.console.conftest import browser_sign_in, create_account
from tests.console.test_core_browser import accessible
from tests.media.images import image_bytes
from tests.smtp import SMTPServer, free_port

pytestmark = [pytest.mark.chromium, pytest.mark.slow, pytest.mark.one_backend("postgres")]
RECIPIENTS = 700  # reader7 and reader70..79 match the filter below, nothing more
RATE = 90  # messages a second: the send lasts ~8 s, long enough to watch and pause
NEWSLETTER = "\n\n".join(
    f"## Item {n}: the partnership's news\n\nParagraph {n} of this month's newsletter, with "
    f"enough words to wrap on a phone and a [link](https://example.org/news/{n}) to read more."
    for n in range(1, 60)
)
ATTACK = """<svg><script>window.top.__attacked = 1</script></svg>
<iframe src="/admin/logout"></iframe>
<form action="/admin/logout" method="post"><button>Sign out</button></form>
<style>body { position: fixed; top: 0; left: 0; width: 100vw; height: 100vh; z-index: 9 }</style>
<div style="position: fixed; top: 0; left: 0; width: 100%; height: 100%; z-index: 9">cover</div>
<img src="x" onerror="window.top.__attacked = 2">
<a href="javascript:window.top.__attacked=3">x</a>"""


class Live:
    def __init__(self, url: str, app: Any) -> None:
        self.url, self.app = url, app
        # An idle connection is dropped after 1 s, well before uvicorn's keep-alive (5 s)
        # closes it: at httpx's default of 5 s the two raced, and a request sent on a
        # connection the server was closing failed with ReadError after a long browser step.
        self.api = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            limits=httpx.Limits(keepalive_expiry=1),
        )


@pytest.fixture
async def live(make_settings: Callable[..., Settings], smtpd: SMTPServer) -> AsyncIterator[Live]:
    """uvicorn with the embedded dispatcher; SMTP at RATE messages a second, so the send
    lasts long enough to be watched and paused."""
    branding.reset()
    stored_layouts.reset()
    port = free_port()
    base = f"http://localhost:{port}"
    app = create_app(make_settings(public_url=base, embedded_worker=True,
                                   smtp_url=f"{smtpd.url}?rate={RATE}"))  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))  # fmt: skip
    task = asyncio.create_task(server.serve())
    for _ in range(100):
        if server.started or task.done():
            break
        await asyncio.sleep(0.1)
    assert server.started
    live = Live(base, app)
    yield live
    await live.api.aclose()
    server.should_exit = True
    await asyncio.wait_for(task, timeout=30)
    branding.reset()


async def seed(app: Any) -> int:
    """A list of RECIPIENTS confirmed subscribers and last month's sent issue; its id."""
    async with app.state.sessionmaker() as session:
        weekly = MailingList(slug="weekly", name="Weekly News", description="")
        session.add(weekly)
        await session.flush()
        people = [Subscriber(email=f"reader{n}@example.org", email_key=f"reader{n}@example.org",
                             name=f"Reader {n}", attributes={},
                             status="active") for n in range(RECIPIENTS)]  # fmt: skip
        session.add_all(people)
        await session.flush()
        session.add_all(Subscription(subscriber_id=p.id, list_id=weekly.id, status="confirmed")
                        for p in people)  # fmt: skip
        old = Issue(subject="October news", preheader="", template="newsletter",
                    format="markdown", body="# October\n\nLast month.", status="sent",
                    recipients=0)  # fmt: skip
        session.add(old)
        await session.flush()
        session.add(IssueList(issue_id=old.id, list_id=weekly.id))
        await session.commit()
        return old.id


async def figure(page: Any, key: str) -> int:
    return int((await page.locator(f"#p-{key}").inner_text()).strip() or 0)


async def wait_saved(page: Any) -> None:
    await page.get_by_text(re.compile(r"^Saved at")).wait_for(timeout=15_000)


async def test_comms_officer_sends_an_issue_from_the_console(
    live: Live, browser: Any, smtpd: SMTPServer, tmp_path: Path
) -> None:
    await seed(live.app)
    await create_account(live.app, "officer@example.org", "editor")
    await create_account(live.app, "reader@example.org", "viewer")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    await browser_sign_in(page, live.url, "officer@example.org")
    await page.wait_for_url(f"{live.url}/admin")

    # Duplicate last month's issue: the copy opens in the editor.
    await page.goto(f"{live.url}/admin/issues")
    await accessible(page)
    await page.get_by_role("button", name="Duplicate October news").click()
    await page.wait_for_url(re.compile(r".*/admin/issues/\d+$"))
    issue_id = int(page.url.rsplit("/", 1)[1])
    await page.get_by_label("Subject").fill(
        "November news for {{ subscriber.name | default('you') }}"
    )
    # A template error is shown with its line while typing, and goes once it is fixed.
    await page.get_by_label("Body", exact=True).fill("Hello\n\n{% if %}\n")
    await page.locator("#problems").get_by_text(re.compile(r"^Body, line 3: ")).wait_for()
    await page.get_by_label("Body", exact=True).fill(NEWSLETTER)
    await wait_saved(page)
    assert await page.locator("#problems").inner_text() == ""

    # Upload a banner while editing: it lands at the cursor with width, height and alt.
    banner = tmp_path / "banner.png"
    banner.write_bytes(image_bytes("PNG", (1200, 300)))
    await page.get_by_label("Alt text (what the image shows)").fill("The partnership's banner")
    await page.locator("#f-body").evaluate("b => b.setSelectionRange(0, 0)")
    await page.wait_for_timeout(1500)  # let the autosave and preview of the paste finish
    await page.get_by_label("Upload an image (PNG, JPEG, GIF, WebP)").set_input_files(banner)
    upload = page.get_by_role("button", name="Upload", exact=True)
    await upload.scroll_into_view_if_needed()
    await page.wait_for_timeout(300)
    await upload.click()
    await page.wait_for_function(
        "() => !document.getElementById('upload-state').textContent.endsWith('…')"
        " && document.getElementById('upload-state').textContent !== ''"
    )
    assert await page.locator("#upload-state").inner_text() == "Uploaded and inserted."
    body = await page.locator("#f-body").input_value()
    inserted = (
        r'<img src="http://localhost:\d+/media/[0-9a-f]{32}-600\.png" width="600" height="150"'
    )
    assert re.search(inserted + r' alt="The partnership\'s banner">', body), body[:300]
    for _ in range(150):  # autosave, debounced: at most 15 s
        stored = (await live.api.get(f"/api/v1/issues/{issue_id}")).json()
        if "-600.png" in stored["body"]:
            break
        await asyncio.sleep(0.1)
    assert "-600.png" in stored["body"] and "Item 59" in stored["body"]
    await wait_saved(page)

    # The preview: both widths, the banner, no sideways scroll, the text part a click away.
    await page.reload()  # the editor as anyone opening it now sees it
    await page.locator("#preview-report").get_by_text("Gmail").wait_for()
    for frame_id, width in (("frame-phone", 375), ("frame-desktop", 640)):
        inside = page.frame_locator(f"#{frame_id}")
        await inside.locator("img[src*='-600.png']").wait_for(state="attached")
        await inside.get_by_text("Item 59:").wait_for()
        frame = await (await page.locator(f"#{frame_id}").element_handle()).content_frame()
        loaded = "() => document.querySelector(\"img[src*='-600.png']\").naturalWidth"
        for _ in range(100):  # the banner loads from the media route: at most 10 s
            if await frame.evaluate(loaded) == 600:
                break
            await asyncio.sleep(0.1)
        assert await frame.evaluate(loaded) == 600
        sizes = await frame.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        # The frame's own 1 px borders are inside its width.
        assert sizes[0] <= sizes[1] == width - 2, (frame_id, sizes)
    assert "Gmail" in await page.locator("#preview-report").inner_text()
    await page.get_by_role("link", name="The plain-text part").click()
    assert "Item 59" in await page.locator("#text-part").inner_text()
    await accessible(page)

    # The library's Insert button, with JavaScript: at the cursor, no page load, autosaved.
    await page.get_by_label("Alt text (what the image shows)").fill("The banner again")
    await page.locator("#f-body").evaluate("b => b.setSelectionRange(0, 0)")
    await page.get_by_role("button", name="Insert the chosen image").click()
    assert page.url == f"{live.url}/admin/issues/{issue_id}"
    body = await page.locator("#f-body").input_value()
    assert re.match(r'\n<img src="http://localhost:\d+/media/[0-9a-f]{32}-600\.png" width="600"'
                    r' height="150" alt="The banner again">\n', body), body[:200]  # fmt: skip
    await wait_saved(page)

    # Test send to the real SMTP server on loopback; its links work.
    await page.get_by_label("Addresses (up to 10, separated by spaces or commas)").fill(
        "me@example.org"
    )
    await page.get_by_role("button", name="Send a test of the saved issue").click()
    await page.get_by_text(re.compile(r"me@example.org: sent")).wait_for()
    [test] = smtpd.to("me@example.org")
    message = test.message
    assert message["Subject"] == "November news for me"
    html_part = message.get_body(("html",)).get_content()
    links = sorted(set(re.findall(r'href="(http://localhost:[^"]+)"', html_part)))
    assert links
    for url in links:
        if "/archive/" in url:
            continue  # the web version exists once the issue is sent; checked below
        answer = await live.api.get(url.replace("&amp;", "&"), headers={"Authorization": ""})
        assert answer.status_code == 200, url
    banner_url = re.search(r'src="(http://localhost:[^"]+-600\.png)"', html_part)[1]  # type: ignore[index]
    assert (await live.api.get(banner_url)).headers["content-type"] == "image/png"

    # Send: the confirmation names the list and the recipients; one click sends once.
    await page.get_by_role("link", name="Send or schedule…").click()
    await accessible(page)
    assert "Weekly News" in await page.locator(".facts").inner_text()
    assert await page.locator("#recipients strong").inner_text() == str(RECIPIENTS)
    send = page.get_by_role("button", name=f"Send to {RECIPIENTS} recipients now")
    await send.dblclick()
    await page.wait_for_url(re.compile(r".*/report$"))

    # Progress moves without a reload; pause holds it, resume finishes it.
    await page.wait_for_function("() => Number(document.getElementById('p-sent').textContent) > 0")
    await page.get_by_role("button", name="Pause").click()
    await page.wait_for_url(re.compile(r".*/report$"))
    await page.wait_for_function(
        "() => document.getElementById('p-status').textContent == 'paused'"
    )
    held = await figure(page, "sent")
    assert 0 < held < RECIPIENTS
    # Only the moves that make sense now: a paused send offers Resume, not Pause.
    assert await page.get_by_role("button", name="Pause").count() == 0
    assert await page.get_by_role("button", name="Resume").count() == 1
    await accessible(page)
    await asyncio.sleep(1.5)
    stats = (await live.api.get(f"/api/v1/issues/{issue_id}/stats")).json()
    # What was in flight when the pause came: about a second at the rate, at most.
    assert stats["status"] == "paused" and stats["sent"] <= held + RATE
    await page.get_by_role("button", name="Resume").click()
    await page.wait_for_function(
        "() => document.getElementById('p-status').textContent == 'sent'", timeout=180_000
    )
    assert await figure(page, "sent") == RECIPIENTS
    assert (await figure(page, "failed"), await figure(page, "queued")) == (0, 0)
    readers = {r.recipients[0] for r in smtpd.received if r.recipients[0].startswith("reader")}
    assert len(readers) == RECIPIENTS
    assert len([r for r in smtpd.received if r.recipients[0].startswith("reader")]) == RECIPIENTS
    await page.get_by_label("Status").select_option("sent")
    await page.get_by_label("Address contains").fill("reader7")
    await page.get_by_role("button", name="Filter").click()
    rows = await page.locator("#deliveries tbody tr").count()
    assert rows == 11  # reader7, reader70..79
    assert dialogs == []
    archived = [u for u in links if "/archive/" in u]
    for url in archived:
        assert (await live.api.get(url)).status_code == 200, url
    await context.close()

    # A viewer reads the report and the editor of a draft, and can change nothing.
    attack = {"subject": "Attack", "lists": ["weekly"], "format": "html", "body": ATTACK}
    draft = (await live.api.post("/api/v1/issues", json=attack)).json()
    context = await browser.new_context(viewport={"width": 375, "height": 800})
    viewer = await context.new_page()
    await browser_sign_in(viewer, live.url, "reader@example.org")
    await viewer.wait_for_url(f"{live.url}/admin")
    await viewer.goto(f"{live.url}/admin/issues/{issue_id}/report")
    assert await viewer.get_by_role("button", name="Pause").count() == 0
    assert await viewer.get_by_role("button", name="Save archive choice").count() == 0
    await accessible(viewer)
    await viewer.goto(f"{live.url}/admin/issues/{draft['id']}")
    assert await viewer.get_by_label("Subject").is_disabled()
    await viewer.locator("#preview-report").get_by_text("Gmail").wait_for()
    await accessible(viewer)  # the editor at phone width, the attack body in its preview
    assert await viewer.get_by_role("button", name="Send a test of the saved issue").count() == 0
    await context.close()

    # The attack body, opened by the editor: nothing runs, every control still works.
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    await browser_sign_in(page, live.url, "officer@example.org")
    await page.wait_for_url(f"{live.url}/admin")
    await page.goto(f"{live.url}/admin/issues/{draft['id']}")
    await page.locator("#preview-report").get_by_text("Gmail").wait_for()
    await page.wait_for_timeout(500)
    assert await page.evaluate("window.__attacked") is None
    assert dialogs == []
    await page.get_by_label("Preheader").fill("Still in control")
    save = page.get_by_role("button", name="Save", exact=True)
    await save.scroll_into_view_if_needed()
    await page.wait_for_timeout(300)  # Chromium hit-tests stale frame regions right after a scroll
    await save.click()
    await page.get_by_text("Saved.").wait_for()
    assert (await live.api.get(f"/api/v1/issues/{draft['id']}")).json()["preheader"] == (
        "Still in control"
    )
    await page.get_by_role("link", name="Issues").first.click()
    await page.wait_for_url(f"{live.url}/admin/issues")
    await page.goto(f"{live.url}/admin")
    assert page.url == f"{live.url}/admin"  # still signed in: the framed logout did nothing
    await context.close()
