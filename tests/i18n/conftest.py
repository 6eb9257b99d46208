"""Fixtures borrowed from other folders: the console's clients, and a real uvicorn."""

from tests.console.conftest import console_as, console_client  # noqa: F401 (fixtures)
from tests.subscribers.test_form_browser import server  # noqa: F401 (fixture)
