"""`tidings engagement ranges`: load the full list of Apple's prefetch (egress) ranges.

`--fetch URL` downloads it (Apple's egress-ip-ranges.csv, or a mirror of it), `--file PATH`
reads a copy; either way every line's prefix is checked and the valid ones are written,
one per line, to var/prefetch-ranges.txt (atomically: a reader sees the old file or the
new one). Running processes read it again at their next flush.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from app.config import Settings
from app.engagement import ranges

app = typer.Typer(help="Engagement tracking.", no_args_is_help=True)


def register(cli: Any) -> None:
    """Add `engagement` to the `tidings` command."""
    cli.add_typer(app, name="engagement")


def write(lines: list[str], var_dir: Path) -> tuple[int, int, Path]:
    """(valid, invalid, file): the valid prefixes of `lines` written to var/'s ranges file.

    A list with no valid prefix is refused (ValueError) and the file left as it was.
    """
    found = [(p, ranges.parse_prefix(p)) for p in ranges.prefixes(lines)]
    valid = [p for p, parsed in found if parsed is not None]
    if not valid:
        raise ValueError("no address range in it: nothing written")
    target = Path(var_dir) / ranges.VAR_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".ranges-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# Written by `tidings engagement ranges`; one prefix per line.\n")
        out.write("".join(f"{p}\n" for p in valid))
    os.replace(temporary, target)
    return len(valid), len(found) - len(valid), target


@app.command("ranges")
def ranges_command(
    fetch: Annotated[str, typer.Option(help="download the list from this https URL")] = "",
    file: Annotated[Path | None, typer.Option(help="read the list from this file")] = None,
) -> None:
    """Load Apple's published egress ranges (CSV: prefix,country,region,city) for the classifier."""
    if bool(fetch) == (file is not None):
        raise typer.BadParameter("give one of --fetch URL or --file PATH")
    if fetch:
        if not fetch.startswith("https://"):
            raise typer.BadParameter("--fetch takes an https:// URL")
        with urllib.request.urlopen(fetch, timeout=60) as answer:  # noqa: S310 (https only)
            text = answer.read().decode("utf-8", errors="replace")
    else:
        assert file is not None
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {file}: {exc.strerror}") from None
    try:
        valid, invalid, target = write(text.splitlines(), Settings().var_dir)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    skipped = f" ({invalid} lines skipped)" if invalid else ""
    typer.echo(f"{valid} ranges written to {target}{skipped}")
