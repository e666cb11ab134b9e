"""Storage backends of the aggregator, opened from a database URL (`open_storage`): SQLite
(`SqliteStorage`, the embedded default) and PostgreSQL (`aggregator.storage.postgres.PgStorage`)."""

from aggregator.storage.base import StorageBackend
from aggregator.storage.errors import SchemaTooNewError, StorageError, StorageUnavailableError
from aggregator.storage.sqlite import SqliteStorage
from aggregator.storage.url import DatabaseUrl, open_storage, parse_database_url

__all__ = [
    "DatabaseUrl",
    "SchemaTooNewError",
    "SqliteStorage",
    "StorageBackend",
    "StorageError",
    "StorageUnavailableError",
    "open_storage",
    "parse_database_url",
]
