"""PostgreSQL for the tests: databases on the machine's server, and a throwaway server of a test's own.

`PgDatabases` makes migrated databases on the shared server (trust auth), cloned from one template per run.
`password_cluster` starts a private server (initdb in a temporary directory, a free port, scram-sha-256
password authentication on TCP) for what the shared server cannot show: a wrong password. It runs as the
`postgres` OS user when the tests run as root (initdb refuses root), and is stopped and removed however the
test ends.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from aggregator.storage import open_storage
from tests.netkit import free_port

CLUSTER_USER = "postgres"
"""The OS user a private server runs as when the tests run as root."""


class PgDatabases:
    """Databases on the test server: a migrated template, and clones of it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.prefix = f"showroom_t{uuid.uuid4().hex[:8]}"
        self.made: list[str] = []
        self.free: list[str] = []
        self.template: str | None = None
        self.admin = psycopg.connect(dsn, autocommit=True)

    def url(self, name: str) -> str:
        return urlunsplit(urlsplit(self.dsn)._replace(path=f"/{name}"))

    def new(self) -> str:
        """An empty migrated database: a recycled one, or a new clone of the template."""
        if self.free:
            return self.free.pop()
        if self.template is None:
            self.template = f"{self.prefix}_template"
            self.admin.execute(f'CREATE DATABASE "{self.template}"')
            self.made.append(self.template)
            open_storage(self.url(self.template)).close()
        name = f"{self.prefix}_{len(self.made)}"
        self.admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.made.append(name)
        return self.url(name)

    def release(self, url: str) -> None:
        """Empty a database a test is done with, for the next one (far cheaper than dropping it)."""
        with psycopg.connect(url, autocommit=True) as conn:
            tables = [
                str(r[0])
                for r in conn.execute(
                    "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                    "AND relkind IN ('r', 'p') AND NOT relispartition "
                    "AND relname NOT IN ('schema_migrations', 'rollups_version')"
                )
            ]
            # DELETE, not TRUNCATE: a test's few rows go at once, where TRUNCATE replaces every file.
            for table in tables:
                conn.execute(f'DELETE FROM "{table}"')
            for table in ("quarantine", "audits"):
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1, false)")
        self.free.append(url)

    def drop_all(self) -> None:
        for name in reversed(self.made):
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()


class ClusterUnavailableError(RuntimeError):
    """A private server cannot be started on this machine (no PostgreSQL binaries, no user to run as)."""


def server_bin() -> Path:
    """The directory of the newest installed PostgreSQL server's initdb and pg_ctl."""
    found = sorted(
        (p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    on_path = shutil.which("initdb")
    if on_path is not None and shutil.which("pg_ctl") is not None:
        return Path(on_path).parent
    raise ClusterUnavailableError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")


@dataclass(frozen=True)
class PasswordCluster:
    """A running private server: `superuser`/`password` may do anything over TCP on 127.0.0.1:`port`."""

    port: int
    superuser: str
    password: str

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url(self.superuser, self.password, "postgres")

    def create_role(self, user: str, password: str, database: str) -> str:
        """A login role with `password` owning a new `database`; its URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'")
            conn.execute(f'CREATE DATABASE "{database}" OWNER "{user}"')
        return self.url(user, password, database)


def _as_server_user() -> list[str]:
    """The command prefix that runs a server program as a user it accepts (never root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(CLUSTER_USER)
    except KeyError as exc:
        raise ClusterUnavailableError(
            f"running as root and there is no {CLUSTER_USER!r} OS user to run initdb as"
        ) from exc
    return ["runuser", "-u", CLUSTER_USER, "--"]


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")


@contextmanager
def password_cluster() -> Iterator[PasswordCluster]:
    """A private PostgreSQL server with scram-sha-256 password authentication on TCP, for the duration."""
    bindir = server_bin()
    prefix = _as_server_user()
    base = Path(tempfile.mkdtemp(prefix="showroom-pg-"))
    data, log = base / "data", base / "server.log"
    superuser, password = "admin", uuid.uuid4().hex
    (base / "pw").write_text(password + "\n", encoding="utf-8")
    started = False
    try:
        if prefix:  # initdb refuses root: the directory belongs to the user it runs as
            entry = pwd.getpwnam(CLUSTER_USER)
            os.chown(base, entry.pw_uid, entry.pw_gid)
            os.chown(base / "pw", entry.pw_uid, entry.pw_gid)
        _run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                superuser,
                f"--pwfile={base / 'pw'}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        port = free_port()
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off -c max_connections=20"
        started = True  # from here on, stop it whatever happens (pg_ctl may time out with it running)
        _run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
            "pg_ctl start",
        )
        yield PasswordCluster(port, superuser, password)
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)
