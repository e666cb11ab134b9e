"""History backfill progress: announced, counted day by day, read by every page until it is done."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from aggregator import backfill
from aggregator.ingest import Ingestor
from aggregator.queries import HistoryLoading, Queries
from aggregator.registry import parse_registry
from aggregator.storage import open_storage

STORE = "sh-pudong-01"
REGISTRY = {
    "brands": [{"id": "aurora", "name": "Aurora Motors"}],
    "stores": [
        {
            "store_id": STORE,
            "name": "Pudong",
            "brand": "aurora",
            "region": "east",
            "timezone": "Asia/Shanghai",
        },
        {
            "store_id": "bj-02",
            "name": "Beijing",
            "brand": "aurora",
            "region": "north",
            "timezone": "Asia/Shanghai",
        },
    ],
}


def test_history_loading_until_every_announced_day_is_in(db: str) -> None:
    storage = open_storage(db)
    Ingestor(storage).load_registry(parse_registry(REGISTRY))
    day = date(2026, 11, 20)
    as_of = datetime(2026, 11, 21, tzinfo=UTC)
    with Queries.open(db) as q:
        assert q.history_loading(STORE) is None  # no backfill at all
        backfill.announce(storage, STORE, 3)
        backfill.day_loaded(storage, STORE)
        assert q.history_loading(STORE) == HistoryLoading(STORE, 1, 3)
        assert q.store_page(STORE, day, day, day, as_of).history == HistoryLoading(STORE, 1, 3)
        assert q.history_loading("bj-02") is None  # per store
        backfill.day_loaded(storage, STORE)
        backfill.day_loaded(storage, STORE)
        assert q.history_loading(STORE) is None
        assert q.store_page(STORE, day, day, day, as_of).history is None
        # Started again on the same database: loading again until the new days are in.
        backfill.announce(storage, STORE, 2)
        assert q.history_loading(STORE) == HistoryLoading(STORE, 3, 5)
    with pytest.raises(ValueError, match="0 or more days"):
        backfill.announce(storage, STORE, -1)
    storage.close()
