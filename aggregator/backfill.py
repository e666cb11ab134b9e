"""Progress of a history backfill, kept in the database so every reader can say "history loading".

A backfill (the demo's, an import of past days) announces how many store-days it will load and counts
each one loaded; `Queries.history_loading` reads the two counters. Counters only ever add, so a
backfill interrupted and started again on the same database announces its days again and the loaded
count catches up with it: the store reads as loading until every announced day is in.
"""

from __future__ import annotations

from aggregator.storage.base import StorageBackend

PREFIX = "backfill."


def total_key(store_id: str) -> str:
    return f"{PREFIX}{store_id}.days_total"


def done_key(store_id: str) -> str:
    return f"{PREFIX}{store_id}.days_done"


def announce(storage: StorageBackend, store_id: str, days: int) -> None:
    """`days` store-days of history are about to be loaded for `store_id`."""
    if days < 0:
        raise ValueError(f"a backfill announces 0 or more days, got {days}")
    with storage.transaction():
        storage.add_counters({total_key(store_id): days})


def day_loaded(storage: StorageBackend, store_id: str) -> None:
    """One more announced store-day of `store_id` is stored."""
    with storage.transaction():
        storage.add_counters({done_key(store_id): 1})
