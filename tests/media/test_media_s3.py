"""The S3-compatible store against moto's real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.media.images import image_bytes

pytestmark = pytest.mark.asyncio
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


async def test_upload_serve_delete_through_the_bucket(app_factory: Any, s3_url: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", **CREDENTIALS)
    s3.create_bucket(Bucket="news-media")
    client = await app_factory(
        s3_bucket="news-media",
        s3_endpoint_url=s3_url,
        s3_access_key_id="test",
        s3_secret_access_key="test",
    )
    data = image_bytes("PNG", (800, 80))
    media = (
        await client.post("/api/v1/media", files={"file": ("b.png", data, "image/png")})
    ).json()
    key = media["url"].rpartition("/")[2]
    stored = s3.get_object(Bucket="news-media", Key=f"media/{key}")
    assert stored["Body"].read() == data
    assert stored["ContentType"] == "image/png"
    names = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="news-media")["Contents"])
    assert names == sorted([f"media/{key}", "media/" + media["email_url"].rpartition("/")[2]])
    served = await client.get(f"/media/{key}")
    assert served.content == data
    assert served.headers["x-content-type-options"] == "nosniff"
    assert not (client.app.state.settings.var_dir / "media").exists()
    assert (await client.delete(f"/api/v1/media/{media['id']}")).status_code == 204
    assert s3.list_objects_v2(Bucket="news-media").get("KeyCount") == 0
    assert (await client.get(f"/media/{key}")).status_code == 404
