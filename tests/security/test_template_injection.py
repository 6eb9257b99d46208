"""Jinja sandbox escapes are refused at create and update; CPU and memory bombs do not hang."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, AppClient
from tests.security.conftest import tried
from tests.security.live import LiveServer
from tests.security.seed import make_list

# Reaches for Python internals: each must be refused with 422.
ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ subscriber.__dict__ }}",
    "{{ subscriber.attributes.__class__ }}",
    "{{ issue.__class__.__init__.__globals__ }}",
    "{{ unsubscribe_url.__class__.__base__.__subclasses__() }}",
    "{{ ''|attr('__class__') }}",
    "{{ ''['__class__'] }}",
    "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ (''|attr('\\x5f\\x5fclass\\x5f\\x5f')).__mro__ }}",
    "{% set x = ''.__class__ %}{{ x }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ '%s'|format(''.__class__) }}",
    "{{ subscriber.email.__class__.__mro__ }}",
    "{% include '/etc/passwd' %}",
    "{% import 'newsletter/layout.mjml' as x %}",
    "{% extends '../../../../etc/passwd' %}",
    "{% from 'x' import y %}",
    "{{ {}.update(a=1) }}{{ [].append(1) }}",
    "{{ subscriber.attributes.clear() }}",
    "{{",
    "{% for %}",
]
# Dunders inside a str.format field: the AST check cannot see them; the sandbox's formatter must.
FORMAT_ESCAPES = [
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ '{0.__class__}'.format(subscriber) }}",
    "{{ '{0.__init__.__globals__}'.format(cycler) }}",
    "{{ '{0.__class__.__base__.__subclasses__}'.format(issue) }}",
]
# Names that exist in plain Jinja or in web frameworks: refused, or rendering nothing of value.
NAMES = [
    "{{ config }}",
    "{{ config.items() }}",
    "{{ request }}",
    "{{ request.application }}",
    "{{ self }}",
    "{{ lipsum }}",
    "{{ cycler }}",
    "{{ settings }}",
    "{{ g }}",
    "{{ url_for }}",
    "{{ get_flashed_messages }}",
    "{{ environ }}",
    "{{ range }}",
    "{{ dict }}",
]
LEAKS = ["<class", "<function", "<module", "<bound", "built-in", "object at 0x", "os.", "Secret"]
# What would matter: configuration, the request, the environment (Jinja's own safe globals
# such as cycler, range, dict render as their class or function name, which tells nothing).
VALUABLE = ["Settings", "database_url", "secret", "<Request", "environ", "<module"]


async def _create(client: AppClient, body: str) -> httpx.Response:
    return await client.post(
        "/api/v1/issues",
        json={"subject": "Sandbox", "lists": ["news"], "format": "html", "body": body},
    )


async def test_sandbox_escapes_refused_at_create_and_update(client: AppClient) -> None:
    """Every escape attempt: 422 on create and on PATCH of a draft; the draft is unchanged."""
    await make_list(client, "news")
    draft = await _create(client, "<p>Fine</p>")
    assert draft.status_code == 201
    draft_id = draft.json()["id"]
    failures = []
    for payload in ESCAPES:
        for fmt in ("html", "markdown"):
            r = await client.post(
                "/api/v1/issues",
                json={"subject": "S", "lists": ["news"], "format": fmt, "body": payload},
            )
            tried("sandbox")
            if r.status_code != 422:
                failures.append(f"create {fmt} {payload!r}: {r.status_code}")
        r = await client.patch(f"/api/v1/issues/{draft_id}", json={"body": payload})
        tried("sandbox")
        if r.status_code != 422:
            failures.append(f"patch {payload!r}: {r.status_code}")
        r = await client.post(
            "/api/v1/issues",
            json={"subject": "S", "preheader": payload, "lists": ["news"], "body": "x"},
        )
        tried("sandbox")
        if r.status_code == 201:  # a preheader that is not a template must come out verbatim
            html = (await client.get(f"/api/v1/issues/{r.json()['id']}/preview")).text
            if any(leak in html for leak in LEAKS):
                failures.append(f"preheader {payload!r} leaked")
    assert (await client.get(f"/api/v1/issues/{draft_id}")).json()["body"] == "<p>Fine</p>"
    assert not failures, failures


async def test_framework_names_render_nothing_of_value(client: AppClient) -> None:
    """config, request, self, lipsum, ...: refused, or the preview shows no Python object."""
    await make_list(client, "news")
    secret = client.app.state.settings.secret_key_value
    failures = []
    for payload in NAMES:
        r = await _create(client, f"<p>[{payload}]</p>")
        tried("sandbox")
        if r.status_code == 422:
            continue
        assert r.status_code == 201, r.text
        text = (
            await client.get(f"/api/v1/issues/{r.json()['id']}/preview", params={"format": "text"})
        ).text
        shown = re.search(r"\[(.*?)\]", text, re.S)
        value = shown.group(1) if shown else text
        if any(v in value for v in VALUABLE) or secret in text or ADMIN_TOKEN in text:
            failures.append(f"{payload!r} showed {value[:100]!r}")
    assert not failures, failures


async def test_format_string_escapes_render_nothing(client: AppClient) -> None:
    """Dunders reached through str.format render nothing (the sandbox formatter blocks them)."""
    await make_list(client, "news")
    for payload in FORMAT_ESCAPES:
        r = await _create(client, f"<p>[{payload}]</p>")
        tried("sandbox")
        if r.status_code == 422:
            continue
        for fmt in ("html", "text"):
            text = (
                await client.get(f"/api/v1/issues/{r.json()['id']}/preview", params={"format": fmt})
            ).text
            assert "[]" in text and not any(leak in text for leak in LEAKS), (payload, fmt)


async def test_format_string_escapes_refused(client: AppClient) -> None:
    """Dunders reached through str.format are refused at create like any other."""
    await make_list(client, "news")
    for payload in FORMAT_ESCAPES:
        assert (await _create(client, payload)).status_code == 422, payload


# CPU and memory bombs run against a real server process, so a hang is contained and killed.
BOMBS = {
    "nested loops": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}"
    "{% endfor %}",
    "huge repeat": "{{ 'x' * 10**9 }}",
    "huge power": "{% set n = 7 ** 100000000 %}done",
    "huge range": "{{ range(10**9)|list }}",
    "deep recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
}
BOMB_BOUND = 20.0  # seconds: far beyond any legitimate render, short of a hung request


@pytest.fixture(scope="module")
def bomb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("bombs")).start()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    httpx.post(server.url + "/api/v1/lists", json={"slug": "news", "name": "News"}, headers=auth)
    yield server
    server.stop()


async def _bomb(server: LiveServer, body: str) -> str:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as c:
        try:
            r = await c.post(
                "/api/v1/issues",
                json={"subject": "B", "lists": ["news"], "format": "html", "body": body},
                timeout=BOMB_BOUND,
            )
        except httpx.TimeoutException:
            return "hung"
        health = await c.get("/healthz", timeout=5)
        return f"{r.status_code}/{health.status_code}"


@pytest.mark.slow
async def test_bounded_bombs_refused(bomb_server: LiveServer) -> None:
    """Bombs the sandbox bounds (range, recursion): 422 at once; the server keeps answering."""
    for name in ("huge range", "deep recursion"):
        tried("sandbox")
        assert await _bomb(bomb_server, BOMBS[name]) == "422/200", name


@pytest.mark.slow
async def test_unbounded_bombs_refused(bomb_server: LiveServer) -> None:
    """Loops, repetition and powers big enough to hang: refused with 422 within the bound."""
    names = ("nested loops", "huge repeat", "huge power")
    results = await asyncio.gather(*(_bomb(bomb_server, BOMBS[n]) for n in names))
    tried("sandbox", len(names))
    print(f"\nbombs: {dict(zip(names, results, strict=True))}")
    # Whatever the bombs did, the event loop must stay free for everyone else.
    assert httpx.get(bomb_server.url + "/healthz", timeout=5).status_code == 200
    assert results == ["422/200"] * len(names), results


def test_bomb_server_log_has_no_crash(bomb_server: LiveServer) -> None:
    """The server process is still alive after the bombs."""
    assert bomb_server.proc is not None and bomb_server.proc.poll() is None, Path(
        bomb_server.log
    ).read_text()[-2000:]
