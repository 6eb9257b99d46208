"""The engagement tests' apps answer /o/ and /r/ through FastPath, as `tidings serve` does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.engagement import endpoints


@pytest.fixture
def app_factory(app_factory: Callable[..., Any]) -> Callable[..., Any]:
    """tests/conftest.py's factory, with FastPath installed in each app (once: a no-op when
    create_app puts it there itself)."""

    async def factory(**overrides: Any) -> Any:
        client = await app_factory(**overrides)
        endpoints.install(client.app)
        return client

    return factory
