"""The console's fixtures, for the list form's language select."""

from tests.console.conftest import console_as, console_client  # noqa: F401 (fixtures)
