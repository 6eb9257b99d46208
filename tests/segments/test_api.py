"""The segments API: grammar refusals named where, CRUD with cursor pages, counts, 409 in use."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from app.models import Issue
from tests.conftest import AppClient
from tests.issues.factory import make_issue
from tests.segments.fixtures import seed

COND = {"attribute": "plan", "op": "eq", "value": "pro"}


def _nested(depth: int) -> dict[str, Any]:
    rule: dict[str, Any] = COND
    for _ in range(depth - 1):
        rule = {"not": rule}
    return rule


REFUSED: list[tuple[Any, list[Any], str]] = [
    ([COND], ["body", "rules"], "a rule is an object"),
    ({}, ["body", "rules"], "a rule is an object"),
    ({"all": []}, ["body", "rules", "all"], "non-empty list"),
    ({"all": [COND, COND, {**COND, "op": "like"}]}, ["body", "rules", "all", 2, "op"], "op is"),
    ({"any": [COND], "not": COND}, ["body", "rules", "not"], "no other key"),
    (
        {"not": {"all": [{"attribute": 'a"b', "op": "exists"}]}},
        ["body", "rules", "not", "all", 0, "attribute"],
        "attribute name",
    ),  # fmt: skip
    ({**COND, "extra": 1}, ["body", "rules", "extra"], "no key 'extra'"),
    ({"attribute": "plan", "op": "eq"}, ["body", "rules", "value"], "needs a value"),
    ({"attribute": "age", "op": "lt", "value": True}, ["body", "rules", "value"], "not true"),
    ({"attribute": "age", "op": "eq", "value": {"a": 1}}, ["body", "rules", "value"], "a value"),
    ({"attribute": "age", "op": "in", "value": [1, [2]]}, ["body", "rules", "value", 1], "value"),
    ({"attribute": "age", "op": "in", "value": []}, ["body", "rules", "value"], "list of 1-100"),
    ({"field": "phone", "op": "eq", "value": "1"}, ["body", "rules", "field"], "field is"),
    (
        {"field": "created_at", "op": "lt", "value": "2026-01-01"},
        ["body", "rules", "value"],
        "offset",
    ),  # fmt: skip
    ({"field": "name", "op": "eq", "value": 3}, ["body", "rules", "value"], "compares with text"),
    ({"list": "news", "status": "gone"}, ["body", "rules", "status"], "status is"),
    ({"list": "news"}, ["body", "rules", "status"], "status is"),
    ({"list": "nope", "status": "confirmed"}, ["body", "rules", "list"], "unknown list: nope"),
    (
        {"any": [COND, {"list": "x-y", "status": "pending"}]},
        ["body", "rules", "any", 1, "list"],
        "unknown list: x-y",
    ),  # fmt: skip
    ({"bounced": "hard", "within_days": 0}, ["body", "rules", "within_days"], "within_days"),
    ({"bounced": "maybe"}, ["body", "rules", "bounced"], "bounced is"),
    ({"engaged": "read", "issue": "any"}, ["body", "rules", "engaged"], "engaged is"),
    ({"engaged": "opened", "issue": "x"}, ["body", "rules", "issue"], "issue id"),
    ({"attribute": "x", "list": "news"}, ["body", "rules"], "exactly one"),
    (_nested(21), ["body", "rules", *["not"] * 20], "at most 20 levels"),
    ({"any": [COND] * 201}, ["body", "rules", "any", 200], "at most 200 conditions"),
    ({"any": [{**COND, "value": "x" * 400}] * 190}, ["body", "rules"], "at most 65536 bytes"),
]


async def test_rule_outside_the_grammar_is_422_naming_where(client: AppClient) -> None:
    """Every refused rule of the table, at create and at count: a 422 whose one error names
    where and what; none of them is stored. Each that answers otherwise is named."""
    await seed(client)
    wrong = []
    for number, (rule, loc, message) in enumerate(REFUSED):
        for path, body in (
            ("/api/v1/segments", {"name": "S", "rules": rule}),
            ("/api/v1/segments/count", {"rules": rule}),
        ):
            response = await client.post(path, json=body)
            errors = response.json().get("detail") if response.status_code == 422 else None
            if not (
                isinstance(errors, list)
                and len(errors) == 1
                and errors[0]["loc"] == loc
                and message in errors[0]["msg"]
            ):
                wrong.append((number, path, rule, response.status_code, response.text[:300]))
    assert not wrong, wrong
    assert (await client.get("/api/v1/segments")).json()["items"] == []


async def test_twenty_levels_are_accepted(client: AppClient) -> None:
    await seed(client)
    response = await client.post("/api/v1/segments/count", json={"rules": _nested(20)})
    assert response.status_code == 200 and response.json() == {"count": 4}


async def test_create_read_page_patch_count_delete(client: AppClient) -> None:
    await seed(client)
    made = []
    for n in range(3):
        response = await client.post(
            "/api/v1/segments",
            json={"name": f"Seg {n}", "rules": {"list": "news", "status": "confirmed"}},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["name"] == f"Seg {n}" and body["rules"] == {
            "list": "news",
            "status": "confirmed",
        }
        made.append(body["id"])
    first = (await client.get("/api/v1/segments", params={"limit": 2})).json()
    assert [s["id"] for s in first["items"]] == made[:2] and first["next_cursor"]
    rest = (
        await client.get("/api/v1/segments", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [s["id"] for s in rest["items"]] == made[2:] and rest["next_cursor"] is None

    seg = made[0]
    assert (await client.get(f"/api/v1/segments/{seg}/count")).json() == {"count": 2}
    patched = await client.patch(
        f"/api/v1/segments/{seg}", json={"rules": {"bounced": "any"}, "name": "Bounced"}
    )
    assert patched.status_code == 200 and patched.json()["name"] == "Bounced"
    assert (await client.get(f"/api/v1/segments/{seg}")).json()["rules"] == {"bounced": "any"}
    assert (await client.get(f"/api/v1/segments/{seg}/count")).json() == {"count": 2}
    bad = await client.patch(f"/api/v1/segments/{seg}", json={"rules": {"bounced": 1}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "rules", "bounced"]
    assert (await client.patch(f"/api/v1/segments/{seg}", json={"name": "  "})).status_code == 422
    assert (await client.patch(f"/api/v1/segments/{seg}", json={"nom": "x"})).status_code == 422

    assert (await client.delete(f"/api/v1/segments/{seg}")).status_code == 204
    assert (await client.get(f"/api/v1/segments/{seg}")).status_code == 404
    assert (await client.get(f"/api/v1/segments/{seg}/count")).status_code == 404
    assert (await client.delete(f"/api/v1/segments/{seg}")).status_code == 404


async def test_segments_need_the_admin_token(anon: AppClient) -> None:
    assert (await anon.get("/api/v1/segments")).status_code == 401
    assert (await anon.post("/api/v1/segments/count", json={"rules": COND})).status_code == 401


async def test_delete_in_use_is_409_naming_the_issues(client: AppClient) -> None:
    await seed(client)
    seg = (await client.post("/api/v1/segments", json={"name": "S", "rules": COND})).json()["id"]
    issues = [(await make_issue(client))["id"] for _ in range(3)]
    async with client.app.state.sessionmaker() as session:
        await session.execute(update(Issue).values(segment_id=seg))
        await session.execute(update(Issue).where(Issue.id == issues[1]).values(status="sent"))
        await session.execute(update(Issue).where(Issue.id == issues[2]).values(status="scheduled"))
        await session.commit()
    response = await client.delete(f"/api/v1/segments/{seg}")
    assert response.status_code == 409
    assert response.json()["detail"].endswith(f"issue(s) {issues[0]}, {issues[2]}")
    async with client.app.state.sessionmaker() as session:
        await session.execute(update(Issue).where(Issue.id != issues[1]).values(status="cancelled"))
        await session.commit()
    assert (await client.delete(f"/api/v1/segments/{seg}")).status_code == 204
    # The sent issue outlives its segment.
    async with client.app.state.sessionmaker() as session:
        sent = await session.get(Issue, issues[1])
        assert sent is not None and sent.segment_id is None
