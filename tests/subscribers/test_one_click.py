"""RFC 8058 one-click unsubscribe and the unsubscribe page, over HTTP on both backends."""

from __future__ import annotations

from app import tokens
from tests.subscribers import factory

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


async def test_one_click_urlencoded_leaves_the_issues_lists_only(anon) -> None:
    world = await factory.build(anon.app)
    ann = world.subscribers["ann@example.org"]
    url = f"/u/{factory.token(anon.app, ann, world.issue_id)}"
    r = await anon.post(url, data=ONE_CLICK)
    assert r.status_code == 200
    assert "location" not in r.headers and "set-cookie" not in r.headers
    assert await factory.statuses(anon.app, ann) == {"news": "unsubscribed", "offers": "confirmed"}
    bob = world.subscribers["bob@example.org"]
    assert await factory.statuses(anon.app, bob) == {"news": "confirmed", "offers": "confirmed"}
    # The issue's stats count it through its delivery.
    delivery = await factory.delivery(anon.app, world.deliveries["ann@example.org"])
    assert delivery.unsubscribed_at is not None


async def test_one_click_multipart_and_repeat_is_idempotent(anon) -> None:
    world = await factory.build(anon.app)
    ann = world.subscribers["ann@example.org"]
    url = f"/u/{factory.token(anon.app, ann, world.issue_id)}"
    first = await anon.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert first.status_code == 200
    stamp = (await factory.delivery(anon.app, world.deliveries["ann@example.org"])).unsubscribed_at
    again = await anon.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert again.status_code == 200
    assert await factory.statuses(anon.app, ann) == {"news": "unsubscribed", "offers": "confirmed"}
    later = (await factory.delivery(anon.app, world.deliveries["ann@example.org"])).unsubscribed_at
    assert stamp is not None and later == stamp


async def test_stats_count_the_unsubscribe(client) -> None:
    world = await factory.build(client.app)
    ann = world.subscribers["ann@example.org"]
    await client.post(f"/u/{factory.token(client.app, ann, world.issue_id)}", data=ONE_CLICK)
    stats = await client.get(f"/api/v1/issues/{world.issue_id}/stats")
    if stats.status_code == 404 and "Not Found" == stats.json().get("detail"):
        delivery = await factory.delivery(client.app, world.deliveries["ann@example.org"])
        assert delivery.unsubscribed_at is not None  # the issues API is not built yet
        return
    assert stats.status_code == 200
    assert stats.json()["unsubscribed"] == 1


async def test_everything_field_leaves_every_list(anon) -> None:
    world = await factory.build(anon.app)
    ann = world.subscribers["ann@example.org"]
    r = await anon.post(
        f"/u/{factory.token(anon.app, ann, world.issue_id)}", data={"everything": "1"}
    )
    assert r.status_code == 200 and "no more emails" in r.text
    assert await factory.statuses(anon.app, ann) == {
        "news": "unsubscribed",
        "offers": "unsubscribed",
    }


async def test_token_from_no_issue_leaves_every_list(anon) -> None:
    world = await factory.build(anon.app)
    ann = world.subscribers["ann@example.org"]
    r = await anon.post(f"/u/{factory.token(anon.app, ann, 0)}", data=ONE_CLICK)
    assert r.status_code == 200
    assert set((await factory.statuses(anon.app, ann)).values()) == {"unsubscribed"}


async def test_get_changes_nothing_and_shows_the_lists(anon) -> None:
    world = await factory.build(anon.app)
    ann = world.subscribers["ann@example.org"]
    r = await anon.get(f"/u/{factory.token(anon.app, ann, world.issue_id)}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "ann@example.org" in r.text
    assert "Weekly &lt;News&gt;" in r.text and "Weekly <News>" not in r.text  # escaped
    assert 'name="everything"' in r.text and 'name="list" value="offers"' in r.text
    assert await factory.statuses(anon.app, ann) == {"news": "confirmed", "offers": "confirmed"}
    delivery = await factory.delivery(anon.app, world.deliveries["ann@example.org"])
    assert delivery.unsubscribed_at is None


async def test_forged_truncated_and_foreign_tokens_do_nothing(anon) -> None:
    world = await factory.build(anon.app)
    ann = world.subscribers["ann@example.org"]
    good = factory.token(anon.app, ann, world.issue_id)
    flipped = good[:-1] + ("a" if good[-1] != "a" else "b")
    other_key = tokens.make("another-secret-key-xxxxxxxxxxxxxxxxxxxx", "unsubscribe", ann, 1)
    wrong_purpose = tokens.make(anon.app.state.settings.secret_key_value, "confirm", ann)
    unknown = factory.token(anon.app, 999_999, world.issue_id)
    bad = [flipped, good[:-3], good + "aa", other_key, wrong_purpose, unknown, "x", "%00" * 3]
    pages = set()
    for token in bad:
        for method in ("GET", "POST"):
            r = await anon.request(
                method, f"/u/{token}", data=ONE_CLICK if method == "POST" else None
            )
            assert r.status_code == 404, (token, method)
            assert "ann@" not in r.text
            pages.add(r.text)
        r = await anon.post(f"/preferences/{token}", data={})
        assert r.status_code == 404
    assert len(pages) == 1  # one page for every failure: it tells nothing apart
    for email in world.subscribers:
        assert set((await factory.statuses(anon.app, world.subscribers[email])).values()) == {
            "confirmed"
        }


async def test_another_subscribers_token_touches_only_them(anon) -> None:
    world = await factory.build(anon.app)
    bob = world.subscribers["bob@example.org"]
    await anon.post(f"/u/{factory.token(anon.app, bob, world.issue_id)}", data=ONE_CLICK)
    ann = world.subscribers["ann@example.org"]
    assert await factory.statuses(anon.app, ann) == {"news": "confirmed", "offers": "confirmed"}
    assert (await factory.statuses(anon.app, bob))["news"] == "unsubscribed"


async def test_erased_subscriber_link_is_404(anon) -> None:
    world = await factory.build(anon.app)
    ann = world.subscribers["ann@example.org"]
    async with anon.app.state.sessionmaker() as session:
        from app.models import Subscriber

        sub = await session.get(Subscriber, ann)
        assert sub is not None
        await session.delete(sub)
        await session.commit()
    r = await anon.post(f"/u/{factory.token(anon.app, ann, world.issue_id)}", data=ONE_CLICK)
    assert r.status_code == 404


async def test_broken_body_still_unsubscribes(anon) -> None:
    world = await factory.build(anon.app)
    ann = world.subscribers["ann@example.org"]
    r = await anon.post(
        f"/u/{factory.token(anon.app, ann, world.issue_id)}",
        content=b"--x\r\nbroken",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 200
    assert (await factory.statuses(anon.app, ann))["news"] == "unsubscribed"


async def test_invalid_tokens_are_rate_limited_valid_ones_are_not(app_factory) -> None:
    app = await app_factory(public_rate_limit=3)
    world = await factory.build(app.app)
    ann = world.subscribers["ann@example.org"]
    codes = [(await app.get("/u/notatoken")).status_code for _ in range(5)]
    assert codes[:3] == [404, 404, 404] and codes[-1] == 429
    good = f"/u/{factory.token(app.app, ann, world.issue_id)}"
    # A mailbox provider's burst from one address: well over the ordinary public limit.
    codes = [(await app.post(good, data=ONE_CLICK)).status_code for _ in range(20)]
    assert set(codes) == {200}
