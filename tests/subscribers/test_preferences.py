"""The preference center: GET shows the person's lists, POST keeps the checked ones."""

from __future__ import annotations

from tests.subscribers import factory


async def test_preferences_page_changes_nothing(anon) -> None:
    world = await factory.build(anon.app)
    ann = world.subscribers["ann@example.org"]
    r = await anon.get(f"/preferences/{factory.token(anon.app, ann, world.issue_id)}")
    assert r.status_code == 200
    # The lists' checkboxes (the page also has the "don't track me" one, unticked).
    assert r.text.count('type="checkbox" name="list"') == 2 and r.text.count(" checked") == 2
    assert r.headers["referrer-policy"] == "no-referrer"
    assert await factory.statuses(anon.app, ann) == {"news": "confirmed", "offers": "confirmed"}


async def test_unchecked_lists_are_left_and_rechecked_ones_come_back(anon) -> None:
    world = await factory.build(anon.app)
    ann = world.subscribers["ann@example.org"]
    url = f"/preferences/{factory.token(anon.app, ann, world.issue_id)}"
    r = await anon.post(url, data={"list": ["offers"]})
    assert r.status_code == 200 and "saved" in r.text
    assert await factory.statuses(anon.app, ann) == {"news": "unsubscribed", "offers": "confirmed"}
    r = await anon.post(url, data={"list": ["offers", "news"]})
    assert await factory.statuses(anon.app, ann) == {"news": "confirmed", "offers": "confirmed"}
    r = await anon.post(url, data={})  # nothing ticked: leave everything
    assert await factory.statuses(anon.app, ann) == {
        "news": "unsubscribed",
        "offers": "unsubscribed",
    }
    bob = world.subscribers["bob@example.org"]
    assert await factory.statuses(anon.app, bob) == {"news": "confirmed", "offers": "confirmed"}


async def test_unknown_slugs_are_ignored(anon) -> None:
    world = await factory.build(anon.app)
    ann = world.subscribers["ann@example.org"]
    url = f"/preferences/{factory.token(anon.app, ann, world.issue_id)}"
    r = await anon.post(url, data={"list": ["news", "offers", "<script>", "x" * 5000]})
    assert r.status_code == 200 and "<script>" not in r.text
    assert await factory.statuses(anon.app, ann) == {"news": "confirmed", "offers": "confirmed"}
