"""CSV import over HTTP: streamed, validated row by row, batched, idempotent."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tests.conftest import AppClient
from tests.subscribers.helpers import add, make_list

CSV = "text/csv"


async def import_csv(client: AppClient, body: bytes | AsyncIterator[bytes], slug: str = "news"):  # type: ignore[no-untyped-def]
    return await client.post(
        "/api/v1/subscribers/import",
        params={"list": slug},
        content=body,
        headers={"content-type": CSV},
    )


async def everyone(client: AppClient) -> dict[str, dict]:  # type: ignore[type-arg]
    items = (await client.get("/api/v1/subscribers", params={"limit": 1000})).json()["items"]
    return {s["email"]: s for s in items}


async def test_import_then_reimport_changes_nothing(client: AppClient) -> None:
    await make_list(client, "news")
    body = (
        "\ufeffEmail,Name,City,Plan\r\n"
        "ann@example.com,Ann,Paris,pro\r\n"
        'bob@example.com,"Bob, Jr.","Multi\r\nline",\r\n'
        "\r\n"
        "not-an-address,Broken,,\r\n"
        "ANN@example.com,Ann Again,,\r\n"
        "carol@example.com,,Lyon,free\r\n"
    ).encode()
    first = await import_csv(client, body)
    assert first.status_code == 200, first.text
    result = first.json()
    assert (result["created"], result["updated"], result["skipped"]) == (3, 0, 1)
    assert [e["line"] for e in result["errors"]] == [6]
    assert "not-an-address" in result["errors"][0]["error"]
    people = await everyone(client)
    assert people["ann@example.com"]["attributes"] == {"City": "Paris", "Plan": "pro"}
    assert people["bob@example.com"]["name"] == "Bob, Jr."
    assert people["bob@example.com"]["attributes"] == {"City": "Multi\r\nline"}
    assert people["carol@example.com"]["name"] is None  # no name is no name
    assert all(p["lists"] == [{"slug": "news", "status": "confirmed"}] for p in people.values())

    second = (await import_csv(client, body)).json()
    assert (second["created"], second["updated"], second["skipped"]) == (0, 0, 4)
    assert await everyone(client) == people


async def test_import_updates_only_what_changed(client: AppClient) -> None:
    await make_list(client, "news")
    await make_list(client, "other")
    await add(client, "a@example.com", name="A", attributes={"keep": "yes"}, lists=["news"])
    await add(client, "b@example.com", name="B", lists=["other"])
    await add(client, "c@example.com", name="C", lists=["news"], subscription_status="pending")
    body = b"email,name,tier\na@example.com,,gold\nb@example.com,B,\nc@example.com,C,\n"
    result = (await import_csv(client, body)).json()
    assert (result["created"], result["updated"], result["skipped"]) == (0, 3, 0)
    people = await everyone(client)
    assert people["a@example.com"]["name"] == "A"
    assert people["a@example.com"]["attributes"] == {"keep": "yes", "tier": "gold"}
    assert {x["slug"] for x in people["b@example.com"]["lists"]} == {"news", "other"}
    assert people["c@example.com"]["lists"] == [{"slug": "news", "status": "confirmed"}]


async def test_import_never_brings_back_erased_blocklisted_or_unsubscribed(
    client: AppClient,
) -> None:
    await make_list(client, "news")
    erased = await add(client, "erased@example.com")
    await client.delete(f"/api/v1/subscribers/{erased['id']}")
    blocked = await add(client, "blocked@example.com")
    await client.patch(f"/api/v1/subscribers/{blocked['id']}", json={"status": "blocklisted"})
    left = await add(client, "left@example.com", lists=["news"])
    await client.patch(
        f"/api/v1/subscribers/{left['id']}",
        json={"lists": [{"slug": "news", "status": "unsubscribed"}]},
    )
    body = b"email,name\nErased@example.com,E\nblocked@example.com,B\nleft@example.com,L\n"
    result = (await import_csv(client, body)).json()
    assert (result["created"], result["updated"], result["skipped"]) == (0, 0, 3)
    people = await everyone(client)
    assert "erased@example.com" not in {e.lower() for e in people}
    assert people["blocked@example.com"]["status"] == "blocklisted"
    assert people["blocked@example.com"]["lists"] == []
    assert people["left@example.com"]["lists"] == [{"slug": "news", "status": "unsubscribed"}]


async def test_import_streams_many_batches(client: AppClient) -> None:
    """2,500 rows sent in small chunks, with a bad row in the middle: three batches, one error."""
    await make_list(client, "news")

    async def chunks() -> AsyncIterator[bytes]:
        yield b"email,name,n\n"
        for start in range(0, 2500, 100):
            rows = []
            for i in range(start, start + 100):
                email = "broken@@example.com" if i == 1234 else f"user{i}@example.com"
                rows.append(f'{email},"User {i}",{i}\n')
            data = "".join(rows).encode()
            yield data[:37]  # split a row across chunks on purpose
            yield data[37:]

    result = (await import_csv(client, chunks())).json()
    assert (result["created"], result["updated"], result["skipped"]) == (2499, 0, 0)
    assert [e["line"] for e in result["errors"]] == [1236]
    counts = (await client.get("/api/v1/lists/news")).json()["counts"]
    assert counts["confirmed"] == 2499


async def test_import_bad_files(client: AppClient) -> None:
    await make_list(client, "news")
    cases = [
        (b"", "empty"),
        (b"name,city\nAnn,Paris\n", "email"),
        ("email,name\nann@example.com,Andr\u00e9\n".encode("latin-1"), "line 2"),
        (b"email,email\na@example.com,b@example.com\n", "repeats"),
    ]
    for body, word in cases:
        r = await import_csv(client, body)
        assert r.status_code == 422, (body, r.text)
        assert word in str(r.json()["detail"]), r.text
    latin = await import_csv(client, b"email\nx@example.com\n" + "\u00e9\n".encode("cp1252"))
    assert "UTF-8" in str(latin.json()["detail"])
    unknown = await import_csv(client, b"email\na@example.com\n", slug="nope")
    assert unknown.status_code == 422 and "nope" in str(unknown.json()["detail"])
    assert (await client.post("/api/v1/subscribers/import", content=b"email\n")).status_code == 422
    assert await everyone(client) == {}


async def test_import_row_errors(client: AppClient) -> None:
    await make_list(client, "news")
    body = (
        b"email,name\n"
        b"ok@example.com,Ok\n"
        b"extra@example.com,X,surplus\n"
        b'ctl@example.com,"bad\x01name"\n'
        b',"unterminated\n'
    )
    result = (await import_csv(client, body)).json()
    assert result["created"] == 1
    assert [(e["line"], e["error"].split()[0]) for e in result["errors"]] == [
        (3, "3"),
        (4, "the"),
        (5, "a"),
    ]


async def test_import_error_list_is_capped(client: AppClient) -> None:
    await make_list(client, "news")
    body = b"email\n" + b"bad\n" * 1500
    result = (await import_csv(client, body)).json()
    assert len(result["errors"]) == 1000 and result["errors_omitted"] == 500


async def test_import_over_the_size_limit_is_413(app_factory) -> None:  # type: ignore[no-untyped-def]
    client = await app_factory(max_import_bytes=10_000)
    await make_list(client, "news")
    body = b"email\n" + b"".join(f"u{i}@example.com\n".encode() for i in range(2000))
    assert (await import_csv(client, body)).status_code == 413


async def test_import_needs_admin(anon: AppClient) -> None:
    assert (await import_csv(anon, b"email\na@example.com\n")).status_code == 401
