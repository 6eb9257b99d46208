"""Schemathesis against the app's own OpenAPI, over a real server: no 5xx, schema-conformant."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

from tests.conftest import ADMIN_TOKEN, create_pg_database, drop_pg_database, need
from tests.security.conftest import count_fuzz
from tests.security.live import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A real server with a list, a subscriber and a draft, on each backend."""
    overrides = {"webhook_secret": "fuzz-secret"}
    pg_url = None
    if request.param == "postgres":
        try:
            pg_url = asyncio.run(create_pg_database())
        except (OSError, asyncpg.PostgresError) as exc:
            need(False, f"PostgreSQL ({exc})")
        overrides["database_url"] = pg_url
    server = LiveServer(tmp_path_factory.mktemp("fuzz"), **overrides).start()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    # Something to find: a list, a subscriber on it, and a draft issue.
    httpx.post(server.url + "/api/v1/lists", json={"slug": "news", "name": "News"}, headers=auth)
    httpx.post(
        server.url + "/api/v1/subscribers",
        json={"email": "fuzz@example.org", "lists": ["news"]},
        headers=auth,
    )
    httpx.post(
        server.url + "/api/v1/issues",
        json={"subject": "Fuzz", "lists": ["news"], "format": "markdown", "body": "Hi"},
        headers=auth,
    )
    yield server
    server.stop()
    if pg_url:
        asyncio.run(drop_pg_database(pg_url))


HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Tidings-Secret": "fuzz-secret"}
CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.content_type_conformance,
]


# Failures already reported, each pinned by a strict xfail in test_input_bounds.py; the fuzz
# run counts them but fails only on new ones.
NUL_WRITES = (
    "POST /api/v1/lists",
    "POST /api/v1/issues",
    "PATCH /api/v1/issues/{issue_id}",
    "PATCH /api/v1/lists/{slug}",
)
KNOWN = {
    "huge issue id (test_huge_issue_ids_are_4xx)": lambda label, text: (
        "ST101" in text and ("{issue_id}" in label or label.startswith("GET /archive"))
    ),
    "string 422 detail (test_bad_cursor_422_matches_documented_shape)": lambda label, text: (
        "ST108" in text and "cursor" in text
    ),
    "NUL on PostgreSQL (test_nul_in_list_description_and_issue_text_is_not_500)": (
        lambda label, text: "ST101" in text and label in NUL_WRITES
    ),
    "/metrics content type (test_metrics_content_type_documented)": lambda label, text: (
        "ST105" in text and label == "GET /metrics"
    ),
}


def known(failure: str) -> str | None:
    label, _, text = failure.partition(": ")
    return next((name for name, match in KNOWN.items() if match(label, text)), None)


def _fuzz_operation(operation: Any, failures: list[str]) -> int:
    """Run up to 25 generated cases against one operation; return how many ran."""
    ran = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        database=None,
    )
    def run(case: Any) -> None:
        nonlocal ran
        ran += 1
        count_fuzz()
        try:
            case.call_and_validate(headers=HEADERS, checks=CHECKS, timeout=30)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 (collected, reported below)
            failures.append(f"{operation.label}: {str(exc)[:600]}")
            raise

    try:
        run()
    except (Exception, BaseExceptionGroup):  # noqa: BLE001,S110 (recorded above)
        pass
    return ran


def test_openapi_fuzz(live: LiveServer) -> None:
    """Every operation of /openapi.json, 25 cases each: no 5xx, responses match the schema."""
    api_schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    failures: list[str] = []
    total = operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        total += _fuzz_operation(operation, failures)
    unique = sorted(set(failures))
    new = [f for f in unique if known(f) is None]
    print(
        f"\nschemathesis: {total} cases over {operations} operations; {len(unique)} failing "
        f"operations, {len(unique) - len(new)} of them known bugs, {len(new)} new"
    )
    for line in unique:
        print("  ", known(line) or "NEW", "|", line.replace("\n", " ")[:200])
    assert operations >= 20
    assert not new, new[:10]


def test_server_survived_the_fuzzing(live: LiveServer) -> None:
    """After the fuzzing the server still answers; its 500s are only the known huge-id ones."""
    assert live.proc is not None and live.proc.poll() is None
    assert httpx.get(live.url + "/readyz", timeout=10).status_code == 200
    lines = Path(live.log).read_text(errors="replace").splitlines()
    errors = [ln for ln in lines if '" 500 ' in ln]
    unexplained = [
        ln
        for ln in errors
        if not re.search(r'"\w+ /(api/v1/issues/\d{10,}|archive[/?]|api/v1/(lists|issues)\b)', ln)
    ]
    assert not unexplained, unexplained[:10]
