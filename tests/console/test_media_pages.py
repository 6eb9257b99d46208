"""The media library page: upload by form or fetch(), refusals shown, delete; viewers read."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import csrf_of
from tests.media.images import SVG, image_bytes

pytestmark = pytest.mark.asyncio


async def test_upload_list_delete_and_refusals(client: Any, console_as: Any) -> None:
    c = await console_as("editor")
    c.csrf = csrf_of((await c.get("/admin/media")).text)
    files = {
        "file": (
            "<img src=x onerror=alert(1)>banner.png",
            image_bytes("PNG", (1200, 400)),
            "image/png",
        )
    }
    sent = await c.post("/admin/media", data={"csrf_token": c.csrf}, files=files)
    assert sent.status_code == 303
    page = (await c.get("/admin/media")).text
    assert "&lt;img src=x onerror=alert(1)&gt;banner.png" in page and "<img src=x" not in page
    assert "1200×400" in page
    svg = await c.post("/admin/media", data={"csrf_token": c.csrf},
                       files={"file": ("x.svg", SVG, "image/svg+xml")})  # fmt: skip
    assert "Not uploaded: " in (await c.get(svg.headers["location"])).text
    headers = {"X-CSRF-Token": c.csrf, "Accept": "application/json"}
    gif = {"file": ("a.gif", image_bytes("GIF"), "x")}
    fetched = await c.post("/admin/media", files=gif, headers=headers)
    assert fetched.status_code == 201 and fetched.json()["content_type"] == "image/gif"
    no_csrf = await c.post("/admin/media", files={"file": ("a.gif", image_bytes("GIF"), "x")})
    assert no_csrf.status_code == 403
    items = (await client.get("/api/v1/media")).json()["items"]
    assert len(items) == 2
    viewer = await console_as("viewer")
    viewer_page = await viewer.get("/admin/media")
    assert "Upload an image" not in viewer_page.text and "Delete" not in viewer_page.text
    viewer.csrf = csrf_of(viewer_page.text)
    assert (await viewer.post_form(f"/admin/media/{items[0]['id']}/delete")).status_code == 403
    assert (await c.post_form(f"/admin/media/{items[0]['id']}/delete")).status_code == 303
    assert len((await client.get("/api/v1/media")).json()["items"]) == 1
