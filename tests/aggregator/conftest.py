"""The aggregator's tests run against both storage backends: SQLite files and PostgreSQL databases.

`db` is a fresh database URL of the test's backend (a parametrised fixture: every test using it runs once
per backend). PostgreSQL databases are cloned from one migrated template per test run (cheap), and all of
them, template included, are dropped at the end of the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from aggregator.storage import open_storage
from tests.conftest import require_service

BACKENDS = ("sqlite", "postgresql")


class NewDb:
    """Makes fresh, empty, migrated databases of the test's backend: `new_db()` returns a URL (SQLite: a
    file path); `new_db.release(url)` hands one back before the test ends (many in one test)."""

    def __init__(self, make: Callable[[], str], release: Callable[[str], None]) -> None:
        self._make = make
        self._release = release
        self.used: list[str] = []

    def __call__(self) -> str:
        self.used.append(self._make())
        return self.used[-1]

    def release(self, url: str) -> None:
        self.used.remove(url)
        self._release(url)

    def release_all(self) -> None:
        for url in list(self.used):
            self.release(url)


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


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    dsn = os.environ.get("SHOWROOM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    dbs = PgDatabases(dsn)
    yield dbs
    dbs.drop_all()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_db(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NewDb]:
    if backend == "sqlite":
        yield NewDb(lambda: str(tmp_path_factory.mktemp("db") / "agg.sqlite"), lambda _url: None)
        return
    dbs: PgDatabases = request.getfixturevalue("pg_databases")
    factory = NewDb(dbs.new, dbs.release)
    yield factory
    factory.release_all()


@pytest.fixture
def db(new_db: NewDb) -> str:
    """A fresh database of the test's backend."""
    return new_db()


def sqlite_path(url: str) -> Path:
    """The file of an SQLite test database (tests that look inside the file)."""
    return Path(url)


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def module_db(
    module_backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database of the module's backend, shared by the module's tests."""
    if module_backend == "sqlite":
        yield str(tmp_path_factory.mktemp("db") / "agg.sqlite")
        return
    dbs: PgDatabases = request.getfixturevalue("pg_databases")
    url = dbs.new()
    yield url
    dbs.release(url)
