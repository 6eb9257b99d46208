"""The `tidings` command."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from app.config import Settings
from app.engagement.cli import register as register_engagement

cli = typer.Typer(help="Tidings, a newsletter dispatcher.", no_args_is_help=True)


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[
        int,
        typer.Option(min=1, help="HTTP processes, each with its own dispatcher unless disabled"),
    ] = 1,
) -> None:
    """Serve the HTTP API and pages, with an embedded dispatcher unless disabled."""
    import uvicorn

    from app import var_dir
    from app.main import create_app
    from app.web.server import uvicorn_options

    settings = Settings()
    _logging(settings)
    os.umask(0o077)  # whatever this process creates under var/ is the owner's alone
    var_dir.secure(settings)
    token_file = settings.var_dir / "admin-token"
    settings.admin_token_value  # noqa: B018 (creates the token file on first start)
    if settings.admin_token:
        typer.echo("Admin token: from TIDINGS_ADMIN_TOKEN")
    else:
        typer.echo(f"Admin token: in {token_file} (or run `{_command()} token`)")
    _owner_hint(settings)
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, **uvicorn_options(settings))
        return
    settings.secret_key_value  # noqa: B018 (created once here, not raced by the workers)
    # Several processes need an import path to build the app in each; same environment.
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers,
                **uvicorn_options(settings))  # fmt: skip


@cli.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="messages in flight at once")] = 0,
) -> None:
    """Run a dispatcher with no HTTP; any number may share one PostgreSQL database."""
    from app import metrics
    from app.delivery.dispatcher import run_worker

    metrics.exported = False  # no /metrics here: nothing would read what it counted

    settings = Settings()
    _logging(settings)
    if concurrency:
        settings.concurrency = concurrency
    try:
        import uvloop  # about a tenth more messages per CPU second than asyncio's own loop
    except ImportError:
        asyncio.run(run_worker(settings))
    else:
        uvloop.run(run_worker(settings))


@cli.command()
def migrate() -> None:
    """Bring the configured database to the latest schema (alembic upgrade head)."""
    from app import var_dir
    from app.migrate import upgrade

    settings = Settings()
    os.umask(0o077)
    upgrade(settings.database_url)
    var_dir.secure(settings)
    typer.echo("database is at the latest migration")


@cli.command()
def token() -> None:
    """Print the admin token, creating it if needed."""
    typer.echo(Settings().admin_token_value)


@cli.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="CSV with an email column")
    ],
    list_: Annotated[str, typer.Option("--list", help="slug of the list to add members to")],
) -> None:
    """Import subscribers from a CSV file, with a progress bar."""
    from app.subscribers.importer import import_file_cli

    raise typer.Exit(asyncio.run(import_file_cli(Settings(), file, list_)))


@cli.command()
def send(
    issue_id: Annotated[int, typer.Argument(help="the issue to send")],
    follow: Annotated[
        bool, typer.Option("--follow", help="show live progress until it ends")
    ] = False,
) -> None:
    """Start sending an issue; with --follow, a live progress bar until it ends."""
    from app.delivery.follow import send_cli

    raise typer.Exit(asyncio.run(send_cli(Settings(), issue_id, follow=follow)))


@cli.command()
def outbox(
    count: Annotated[int, typer.Option("--count", "-n", help="how many messages")] = 5,
) -> None:
    """Show the newest messages in the outbox folder, decoded, with their links whole."""
    from app.delivery.transport import OutboxTransport, build_transports
    from app.outbox import newest

    settings = Settings()
    folder = next(
        (t.folder for t in build_transports(settings.smtp_url, settings.var_dir)
         if isinstance(t, OutboxTransport)),
        None,
    )  # fmt: skip
    if folder is None:
        typer.echo("mail goes to SMTP (TIDINGS_SMTP_URL), not to an outbox folder")
        raise typer.Exit(1)
    messages = newest(folder, count)
    if not messages:
        typer.echo(f"no messages in {folder}")
    for message in messages:
        typer.echo(f"{message.path.name}\n  To: {message.to}\n  Subject: {message.subject}")
        for link in message.links:
            typer.echo(f"  {link}")


@cli.command()
def bounces(
    imap: Annotated[
        str,
        typer.Option(envvar="TIDINGS_IMAP_URL", help="imaps://user:password@host/INBOX"),
    ],
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="poll once and exit")] = False,
) -> None:
    """Poll a bounce mailbox over IMAP and record every bounce and complaint in it."""
    from app.bounces.imap import run

    settings = Settings()
    _logging(settings)
    raise typer.Exit(asyncio.run(run(settings, imap, interval=interval, once=once)))


user_cli = typer.Typer(help="Console accounts.", no_args_is_help=True)
cli.add_typer(user_cli, name="user")
register_engagement(cli)  # tidings engagement ranges --fetch URL | --file PATH


@user_cli.command("add")
def user_add(
    email: Annotated[str, typer.Argument(help="the person's email address")],
    role: Annotated[str, typer.Option(help="owner, editor or viewer")] = "editor",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Create a console account; without --password-stdin, print a link that sets the password."""
    import sys

    from app.accounts.cli import add_user
    from app.errors import DomainError

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    try:
        typer.echo(asyncio.run(add_user(Settings(), email, role, password)))
    except DomainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None


@user_cli.command("list")
def user_list() -> None:
    """List the console accounts."""
    from app.accounts.cli import list_users

    for email, role, has_password in asyncio.run(list_users(Settings())):
        typer.echo(f"{email}\t{role}" + ("" if has_password else "\t(invited, no password yet)"))


@user_cli.command("remove")
def user_remove(email: Annotated[str, typer.Argument(help="the account's email")]) -> None:
    """Remove a console account and end its sessions."""
    from app.accounts.cli import remove_user
    from app.errors import DomainError

    try:
        asyncio.run(remove_user(Settings(), email))
    except LookupError:
        typer.echo(f"error: no account {email}", err=True)
        raise typer.Exit(1) from None
    except DomainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"removed {email}")


def _command() -> str:
    """How to type this command here: `tidings` when it is on PATH, else its path (.venv/bin)."""
    import shutil
    import sys

    me = Path(sys.argv[0]).resolve()
    found = shutil.which("tidings")
    if me.name != "tidings" or (found and Path(found).resolve() == me):
        return "tidings"
    try:
        return str(me.relative_to(Path.cwd()))
    except ValueError:
        return str(me)


def _owner_hint(settings: Settings) -> None:
    """On a fresh install, say how to make the first console account."""
    from app.accounts.cli import count_users

    try:
        if asyncio.run(count_users(settings)) == 0:
            typer.echo(
                "No console account yet: create the owner with\n"
                f"  {_command()} user add you@example.org --role owner\n"
                f"then sign in at {settings.public_url.rstrip('/')}/admin"
            )
    except Exception:  # noqa: BLE001 (a database not migrated yet is said by serve itself)
        return


def main() -> None:
    cli()
