"""Storage errors callers can act on: the database cannot be reached, or its schema is not ours."""

from __future__ import annotations


class StorageError(Exception):
    """A storage failure that names what was wrong."""


class StorageUnavailableError(StorageError):
    """The database could not be reached or refused the connection (wrong password, server down,
    connection lost mid-transaction). Nothing of the transaction in flight was written; retrying later is
    safe."""


class SchemaTooNewError(StorageError):
    """The database was migrated by a newer version of the software than this one."""

    def __init__(self, where: str, found: int, known: int) -> None:
        super().__init__(
            f"database {where} has schema version {found}, newer than this software's {known}: "
            "upgrade the aggregator (never run an older one against it)"
        )
        self.found = found
        self.known = known
