"""Storage backends of the aggregator. SQLite (`SqliteStorage`) is the embedded default."""

from aggregator.storage.base import StorageBackend
from aggregator.storage.sqlite import SqliteStorage

__all__ = ["SqliteStorage", "StorageBackend"]
