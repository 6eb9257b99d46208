"""Apple's full egress list: loaded by the CLI, looked up fast, used by the classifier."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from app.engagement import cli as engagement_cli
from app.engagement import ranges
from tests.engagement.helpers import event_rows, flush, open_url, public, sent_issue

LINES = 200_000


def _apple_csv(path: Path) -> list[tuple[str, str, str]]:
    """LINES lines as Apple writes them (`prefix,country,region,city,`), IPv4 and IPv6, in
    random order; (first, last, one past last) of each range whose neighbour is not next to it."""
    rng = random.Random(13)
    lines, probes = [], []
    for i in range(LINES):
        if i % 2:
            net = ipaddress.ip_network(f"2a02:26f7:{i // 65536:x}:{i % 65536:x}::/64")
        else:  # every other /28 of 100.64.0.0/10 and up: gaps between them
            net = ipaddress.ip_network((ipaddress.ip_address("100.64.0.0") + i * 16, 28))
        lines.append(f"{net},GB,GB-EN,London,")
        if i % 997 == 0:
            after = net.broadcast_address + 1
            probes.append((str(net.network_address), str(net.broadcast_address), str(after)))
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n")
    return probes


def test_a_large_list_is_looked_up_exactly(tmp_path: Path) -> None:
    csv = tmp_path / "egress-ip-ranges.csv"
    probes = _apple_csv(csv)
    found = ranges.read([csv])
    # IPv6 /64s next to each other merge into fewer ranges; IPv4 ranges have gaps.
    assert len(found.starts[4]) == LINES // 2 and 0 < len(found.starts[6]) <= LINES // 2
    for first, last, after in probes:
        assert first in found and last in found, (first, last)
        if ":" not in after:
            assert after not in found, after  # the gap after each IPv4 /28
    assert "100.63.255.255" not in found and "::ffff:100.64.0.1" in found
    assert "2a02:26f8::1" not in found and "not an address" not in found and "" not in found
    assert ranges.parse_prefix("10.0.0.0/33") is None and ranges.parse_prefix("x/8") is None


def test_the_cli_writes_the_var_file_and_the_classifier_uses_it(tmp_path: Path) -> None:
    csv = tmp_path / "egress.csv"
    csv.write_text("203.0.113.0/24,US,US-CA,Cupertino,\nnot a prefix,,,\n2001:db8:77::/48,US,,,\n")
    var = tmp_path / "var"
    runner = CliRunner()
    main = typer.Typer()
    main.command()(lambda: None)  # a group, as `tidings` is
    engagement_cli.register(main)
    result = runner.invoke(main, ["engagement", "ranges", "--file", str(csv)],
                           env={"TIDINGS_VAR_DIR": str(var)})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 ranges written" in result.output and "1 lines skipped" in result.output
    loaded = ranges.load(var)
    assert "203.0.113.77" in loaded and "2001:db8:77::5" in loaded
    assert "17.1.2.3" in loaded  # the built-in list still counts
    assert "198.51.100.20" not in loaded
    # Nothing valid: refused, and the file written before is left as it was.
    empty = tmp_path / "empty.csv"
    empty.write_text("prefix,country\n")
    before = (var / ranges.VAR_FILE).read_text()
    result = runner.invoke(main, ["engagement", "ranges", "--file", str(empty)],
                           env={"TIDINGS_VAR_DIR": str(var)})  # fmt: skip
    assert result.exit_code != 0 and "nothing written" in result.output
    assert (var / ranges.VAR_FILE).read_text() == before
    result = runner.invoke(main, ["engagement", "ranges"], env={"TIDINGS_VAR_DIR": str(var)})
    assert result.exit_code != 0 and "--fetch" in result.output


async def test_an_open_from_a_loaded_range_is_a_machine(
    app_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await app_factory(tracking="individual")
    var = client.app.state.settings.var_dir
    engagement_cli.write(["198.51.100.0/24,US,US-CA,Cupertino,"], var)
    extra = tmp_path / "more.txt"
    extra.write_text("192.0.2.0/24\n")
    monkeypatch.setenv(ranges.ENV, str(extra))
    sent = await sent_issue(client, {"ann@example.org": {}, "bob@example.org": {}})
    for address, email in (("198.51.100.20", "ann@example.org"), ("192.0.2.9", "bob@example.org")):
        reader = public(client, address, **{"User-Agent": "Mozilla/5.0"})
        assert (await reader.get(open_url(client, sent, email))).status_code == 200
    await flush(client)
    rows = await event_rows(client)
    assert len(rows) == 2
    for row in rows:
        assert row.machine and "apple-prefetch-range" in row.evidence["reasons"]
