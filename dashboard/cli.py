"""`showroom dashboard`: start the Streamlit app; `showroom dashboard hash-password` for the users file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from aggregator.storage import StorageError
from aggregator.storage.url import parse_database_url
from dashboard.auth import UsersFileError, hash_password, load_users
from dashboard.settings import ENV_DB, ENV_USERS

SERVER_PATH = Path(__file__).resolve().parent / "server.py"
"""The app with the server's cookie route (`dashboard.server`), which `streamlit run` serves."""


def streamlit_argv(port: int, address: str) -> list[str]:
    """The `streamlit run` command line: headless, no usage statistics, no file watching."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(SERVER_PATH),
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        f"--server.port={port}",
        f"--server.address={address}",
        "--client.toolbarMode=minimal",
        "--global.developmentMode=false",
        "--theme.base=light",
    ]


def _database(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """An SQLite file must exist (given as an absolute path: the app runs elsewhere); a URL is kept."""
    if value is None:
        return None
    try:
        where = parse_database_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if where.engine != "sqlite":
        return value
    path = Path(where.target)
    if not path.is_file():
        raise click.BadParameter(f"database file {path} does not exist")
    return str(path.resolve())


def _check_server(db: str) -> None:
    """Open a database server's database once before the app starts, so a wrong password, an unknown
    database or a server that is down stops `showroom dashboard` with the reason (as the aggregator's
    commands do), instead of a page that can never load its figures. An SQLite file was checked already."""
    if parse_database_url(db).engine == "sqlite":
        return
    from aggregator.queries import Queries  # the query layer loads only when the app is started

    try:
        Queries.open(db).close()
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("dashboard", invoke_without_command=True)
@click.option(
    "--db",
    callback=_database,
    help="The aggregator's database: an SQLite file (path or sqlite:///path) or postgresql://USER@HOST/NAME.",
)
@click.option(
    "--users",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Users file (YAML) with hashed passwords and roles.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True, help="HTTP port.")
@click.option(
    "--address", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for the LAN)."
)
@click.pass_context
def dashboard_group(ctx: click.Context, db: str | None, users: Path | None, port: int, address: str) -> None:
    """The dashboard for store managers, brand HQ and installers (`--db` and `--users` start it)."""
    if ctx.invoked_subcommand is not None:
        return
    missing = [name for name, value in (("--db", db), ("--users", users)) if value is None]
    if missing:
        raise click.UsageError(f"missing {' and '.join(missing)}: both are needed to start the dashboard")
    assert db is not None and users is not None
    try:
        found = load_users(users)
    except UsersFileError as exc:
        raise click.ClickException(str(exc)) from exc
    _check_server(db)
    where = parse_database_url(db).redacted
    click.echo(f"dashboard on http://{address}:{port} ({len(found)} user(s), database {where})", err=True)
    env = dict(os.environ)
    env[ENV_DB] = db
    env[ENV_USERS] = str(users.resolve())
    argv = streamlit_argv(port, address)
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process, so stopping `showroom dashboard` stops the server it runs.
    os.execve(argv[0], argv, env)


@dashboard_group.command("hash-password")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input instead of prompting."
)
def hash_password_command(password_stdin: bool) -> None:
    """Print a password hash to paste into the users file's `password_hash`."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        click.echo(hash_password(password))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
