"""Opening storage from a database URL: `sqlite:///path`, a plain file path, or `postgresql://...`.

Every caller (ingest, queries, the HTTP API, the dashboard, the CLI) opens storage here, so a URL is never
taken for a file name and a new backend needs no caller to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from aggregator.storage.base import StorageBackend

POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class DatabaseUrl:
    """Where the aggregator's database lives: an SQLite file or a PostgreSQL connection string."""

    engine: Literal["sqlite", "postgresql"]
    target: str
    """SQLite: the file path; PostgreSQL: the libpq connection URL."""

    @property
    def redacted(self) -> str:
        """The URL for messages and logs: a password, if any, replaced by `***`."""
        if self.engine == "sqlite":
            return self.target
        return redact(self.target)


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def parse_database_url(url: str | Path) -> DatabaseUrl:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db`, a plain path, or `postgresql://USER@HOST:PORT/NAME`.

    Raises ValueError naming the URL for any other scheme (a typo must not become a file name)."""
    if isinstance(url, Path):
        return DatabaseUrl("sqlite", str(url))
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        if text.split(":", 1)[0].lower() in (*POSTGRES_SCHEMES, "sqlite"):
            raise ValueError(
                f"database URL {text!r} is malformed: expected SCHEME://..., e.g. sqlite:///agg.db"
            )
        return DatabaseUrl("sqlite", text)
    scheme = scheme.lower()
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ValueError(
                f"database URL {text!r} has no file: use sqlite:///relative/path.db or sqlite:////absolute.db"
            )
        return DatabaseUrl("sqlite", rest[1:])
    if scheme in POSTGRES_SCHEMES:
        if not urlsplit(text).path.strip("/"):
            raise ValueError(f"database URL {redact(text)!r} names no database (…/NAME at the end)")
        return DatabaseUrl("postgresql", text)
    if len(scheme) == 1:  # a Windows drive letter, C://...
        return DatabaseUrl("sqlite", text)
    raise ValueError(
        f"database URL {redact(text)!r} has unsupported scheme {scheme!r}: expected sqlite:// or postgresql://"
    )


def open_storage(url: str | Path, *, readonly: bool = False) -> StorageBackend:
    """The storage behind `url`, migrated to the current schema unless `readonly` (queries only)."""
    where = parse_database_url(url)
    if where.engine == "postgresql":
        from aggregator.storage.postgres import PgStorage

        return PgStorage(where.target, readonly=readonly)
    from aggregator.storage.sqlite import SqliteStorage

    return SqliteStorage(where.target, readonly=readonly)
