"""The aggregator's tests run against both storage backends: SQLite files and PostgreSQL databases.

`db` is a fresh database URL of the test's backend (a parametrised fixture: every test using it runs once
per backend). PostgreSQL databases are cloned from one migrated template per test run (cheap), and all of
them, template included, are dropped at the end of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.pgkit import PgDatabases

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
