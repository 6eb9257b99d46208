"""The media API: only real images, bounded in bytes and pixels, under generated names."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.media.images import HTML, SVG, image_bytes, png_bomb

pytestmark = pytest.mark.asyncio


async def upload(client: Any, data: bytes, name: str = "photo.png", ctype: str = "image/png"):
    return await client.post("/api/v1/media", files={"file": (name, data, ctype)})


@pytest.mark.parametrize(
    ("fmt", "ctype"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
async def test_each_allowed_format_is_stored_and_served(client: Any, fmt: str, ctype: str) -> None:
    data = image_bytes(fmt, (40, 30))
    # The declared type and name lie: the decoded content decides.
    answer = await upload(client, data, name="x.bin", ctype="application/octet-stream")
    assert answer.status_code == 201, answer.text
    media = answer.json()
    assert (media["content_type"], media["width"], media["height"]) == (ctype, 40, 30)
    assert media["bytes"] == len(data)
    assert media["url"].startswith("http://tidings.test/media/")
    served = await client.get(media["url"].removeprefix("http://tidings.test"))
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == ctype
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "max-age=31536000" in served.headers["cache-control"]


async def test_wide_image_gets_an_email_width_copy(client: Any) -> None:
    media = (await upload(client, image_bytes("PNG", (1200, 300)))).json()
    assert (media["width"], media["email_width"], media["email_height"]) == (1200, 600, 150)
    assert media["email_url"] != media["url"]
    copy = await client.get(media["email_url"].removeprefix("http://tidings.test"))
    assert Image.open(io.BytesIO(copy.content)).size == (600, 150)


async def test_animated_gif_copy_keeps_its_frames(client: Any) -> None:
    media = (await upload(client, image_bytes("GIF", (900, 90), frames=3), "a.gif")).json()
    copy = await client.get(media["email_url"].removeprefix("http://tidings.test"))
    with Image.open(io.BytesIO(copy.content)) as img:
        assert (img.size, img.n_frames) == ((600, 60), 3)


POLYGLOT = image_bytes("GIF") + b"<script>alert(1)</script>"
NOT_IMAGES = {
    "svg": (SVG, "logo.svg", "image/svg+xml"),
    "html renamed .png": (HTML, "photo.png", "image/png"),
    "gif with a script after it": (POLYGLOT, "x.gif", "image/gif"),
    "png with a zip after it": (
        image_bytes("PNG") + b"PK\x03\x04" + b"\x00" * 40,
        "a.png",
        "image/png",
    ),
    "markup in the middle": (
        image_bytes("JPEG")[:200] + b"<html>" + image_bytes("JPEG")[200:],
        "a.jpg",
        "image/jpeg",
    ),
    "truncated png": (image_bytes("PNG", (200, 200))[:120], "a.png", "image/png"),
    "png magic only": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "a.png", "image/png"),
    "bmp": (image_bytes("BMP"), "a.bmp", "image/bmp"),
    "tiff": (image_bytes("TIFF"), "a.png", "image/png"),
    "empty": (b"", "a.png", "image/png"),
}


@pytest.mark.parametrize("case", list(NOT_IMAGES))
async def test_anything_but_an_allowed_image_is_415(client: Any, case: str) -> None:
    data, name, ctype = NOT_IMAGES[case]
    answer = await upload(client, data, name, ctype)
    assert answer.status_code == 415, answer.text
    assert (await client.get("/api/v1/media")).json()["items"] == []


async def test_decompression_bomb_is_refused_before_decoding(client: Any) -> None:
    bomb = png_bomb()
    assert len(bomb) < 200_000
    answer = await upload(client, bomb, "bomb.png")
    assert answer.status_code == 413
    assert "pixel" in answer.json()["detail"]


async def test_pixel_limit_is_the_configured_one(app_factory: Any) -> None:
    client = await app_factory(max_media_pixels=10_000)
    assert (await upload(client, image_bytes("PNG", (101, 100)))).status_code == 413
    assert (await upload(client, image_bytes("PNG", (100, 100)))).status_code == 201


async def test_over_the_byte_limit_is_413(app_factory: Any) -> None:
    client = await app_factory(max_media_bytes=20_000)
    big = image_bytes("BMP", (200, 200))  # ~120 KB, its size decides before its kind
    assert (await upload(client, big)).status_code == 413
    # Just under the limit, framing included, a real image passes.
    assert (await upload(client, image_bytes("PNG", (50, 50)))).status_code == 201


async def test_a_huge_streamed_upload_is_cut_off(app_factory: Any) -> None:
    client = await app_factory(max_media_bytes=100_000)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(2048):  # would be 2 GB at 1 MB a chunk; refused after ~100 KB
            sent += 1
            yield b"\x00" * (1 << 20)

    answer = await client.post(
        "/api/v1/media",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert answer.status_code == 413
    assert sent < 5


async def test_declared_content_length_over_the_limit_is_refused_at_once(app_factory: Any) -> None:
    client = await app_factory(max_media_bytes=100_000)
    answer = await client.post(
        "/api/v1/media",
        content=b"x" * 300_000,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert answer.status_code == 413


@pytest.mark.parametrize(
    "name", ["../../../../tmp/evil.png", "..\\..\\evil.png", "/etc/passwd", "a\x00b.png", "é.png"]
)
async def test_file_names_never_reach_the_file_system(client: Any, name: str) -> None:
    answer = await upload(client, image_bytes("PNG"), name=name)
    assert answer.status_code == 201, answer.text
    media = answer.json()
    assert "/" not in media["name"] and "\\" not in media["name"] and "\x00" not in media["name"]
    key = media["url"].rpartition("/")[2]
    root: Path = client.app.state.settings.var_dir / "media"
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [key]
    assert not Path("/tmp/evil.png").exists()


@pytest.mark.parametrize(
    "key", ["..%2f..%2fsecret-key", "x.png", "0" * 32 + ".svg", "0" * 32 + ".png"]
)
async def test_file_route_serves_only_generated_keys(anon: Any, key: str) -> None:
    assert (await anon.get(f"/media/{key}")).status_code == 404


async def test_list_get_delete(client: Any) -> None:
    first = (await upload(client, image_bytes("PNG", (1000, 100)))).json()
    second = (await upload(client, image_bytes("JPEG"))).json()
    page = (await client.get("/api/v1/media?limit=1")).json()
    assert [m["id"] for m in page["items"]] == [second["id"]]
    rest = (await client.get(f"/api/v1/media?limit=1&cursor={page['next_cursor']}")).json()
    assert [m["id"] for m in rest["items"]] == [first["id"]]
    assert (await client.get(f"/api/v1/media/{first['id']}")).json()["url"] == first["url"]
    assert (await client.delete(f"/api/v1/media/{first['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/media/{first['id']}")).status_code == 404
    for url in (first["url"], first["email_url"]):
        assert (await client.get(url.removeprefix("http://tidings.test"))).status_code == 404
    assert (await client.delete(f"/api/v1/media/{first['id']}")).status_code == 404


async def test_the_api_needs_the_token_and_the_files_do_not(client: Any, anon: Any) -> None:
    media = (await upload(client, image_bytes("PNG"))).json()
    assert (await anon.get("/api/v1/media")).status_code == 401
    assert (await upload(anon, image_bytes("PNG"))).status_code == 401
    assert (await anon.delete(f"/api/v1/media/{media['id']}")).status_code == 401
    assert (await anon.get(media["url"].removeprefix("http://tidings.test"))).status_code == 200
