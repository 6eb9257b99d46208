"""The recorder's buffers: nothing in them for the collector to walk, verdicts across
flushes as within one, and every hit written when the app stops."""

from __future__ import annotations

import gc
from typing import Any

from tests.conftest import AppClient, start_client
from tests.engagement.helpers import BROWSER_UA, click_url, flush, open_url, public, sent_issue

READERS = {f"r{i}@example.org": {} for i in range(4)}


async def _engagement(client: AppClient, issue_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/issues/{issue_id}/engagement")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_buffered_hits_are_nothing_the_collector_tracks(client: AppClient) -> None:
    sent = await sent_issue(client, READERS)
    reader = public(client, **{"User-Agent": BROWSER_UA})
    for email in READERS:
        assert (await reader.get(open_url(client, sent, email))).status_code == 200
        for index in sorted(sent.links):
            assert (await reader.get(click_url(client, sent, email, index))).status_code == 302
    recorder = client.app.state.engagement_recorder
    # A tuple of strings and numbers is untracked by the first collection it lives through;
    # one of such tuples, once they are: a second collection covers the pairs in `recent`.
    gc.collect()
    gc.collect()
    held = [*recorder.pending, *recorder.recent.values(), *recorder.counted,
            *recorder._expiry, *recorder._counted_expiry]  # fmt: skip
    assert recorder.pending and recorder.recent and not [h for h in held if gc.is_tracked(h)]
    await flush(client)
    assert not recorder.pending
    stats = await _engagement(client, sent.issue_id)
    assert (stats["opens"], stats["machine_clicks"]) == (
        len(READERS),
        len(READERS) * len(sent.links),
    )


async def test_a_repeat_and_a_burst_are_seen_across_flushes(client: AppClient) -> None:
    sent = await sent_issue(client)
    reader = public(client, **{"User-Agent": BROWSER_UA})
    two, three = sorted(i for i in sent.links if i >= 2)[:2]
    await reader.get(click_url(client, sent, "ann@example.org", two))
    await flush(client)  # judged alone: a person's click
    await reader.get(click_url(client, sent, "ann@example.org", two))  # the same again: no hit
    await reader.get(click_url(client, sent, "ann@example.org", three))  # another link at once
    await flush(client)
    stats = await _engagement(client, sent.issue_id)
    assert (stats["clicks"], stats["unique_clicks"], stats["machine_clicks"]) == (1, 1, 1)
    assert stats["machine_reasons"]["click"] == {"links-within-2s": 1}


async def test_hits_still_buffered_are_written_when_the_app_stops(make_settings: Any) -> None:
    settings = make_settings()
    first, lifespan = await start_client(settings)
    try:
        sent = await sent_issue(first, READERS)
        reader = public(first, **{"User-Agent": BROWSER_UA})
        for email in READERS:
            assert (await reader.get(open_url(first, sent, email))).status_code == 200
        assert first.app.state.engagement_recorder.pending  # held ~2.5 s: none written yet
    finally:
        await first.aclose()
        await lifespan.__aexit__(None, None, None)  # drains the recorder
    second, lifespan = await start_client(settings)
    try:
        stats = await _engagement(second, sent.issue_id)
        assert (stats["opens"], stats["unique_opens"]) == (len(READERS), len(READERS))
    finally:
        await second.aclose()
        await lifespan.__aexit__(None, None, None)
