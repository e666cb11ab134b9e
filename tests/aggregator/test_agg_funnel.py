"""The DOMAIN.md screen, reproduced from contract events through the real ingest path."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from aggregator.synth import funnel_day_plans, local_midnight_utc, stamper_for, visit_events
from edge.events import Envelope, to_json, topic_for

STORE = "sh-pudong-01"
TZ = "Asia/Shanghai"
REGISTRY = {
    "brands": [{"id": "aurora", "name": "Aurora Motors"}],
    "stores": [
        {
            "store_id": STORE,
            "name": "Pudong Flagship",
            "brand": "aurora",
            "region": "east",
            "timezone": TZ,
            "floor_size_m": [36, 24],
            "cars": [
                {
                    "id": "car-01",
                    "model_name": "Model S",
                    "browse_zone_m": [[2, 3], [10, 3], [10, 9], [2, 9]],
                },
                {
                    "id": "car-02",
                    "model_name": "Model X",
                    "browse_zone_m": [[12, 3], [20, 3], [20, 9], [12, 9]],
                },
            ],
        }
    ],
}


def messages(events: list[Envelope]) -> list[Message]:
    now = datetime.now(UTC)
    return [Message(topic_for(e), to_json(e), now) for e in events]


def day_events(
    day: date, visitors: int, browsers: int, entrants: int, receptions: int, seed: int
) -> list[Envelope]:
    stamper = stamper_for(STORE, seed=seed)
    plans = funnel_day_plans(
        local_midnight_utc(day, TZ),
        visitors,
        browsers,
        entrants,
        receptions,
        cars=("car-01", "car-02"),
        seed=seed,
    )
    return [e for p in plans for e in visit_events(stamper, p)]


@pytest.fixture
def ingestor(db: str) -> Ingestor:
    ing = Ingestor(open_storage(db))
    ing.load_registry(parse_registry(REGISTRY))
    return ing


def test_domain_screen_from_events(ingestor: Ingestor, db: str) -> None:
    yesterday, today = date(2026, 11, 22), date(2026, 11, 23)
    ingestor.ingest(messages(day_events(yesterday, 35, 33, 7, 20, seed=1)))
    ingestor.ingest(messages(day_events(today, 59, 46, 11, 40, seed=2)))
    with Queries.open(db) as q:
        f = q.funnel(STORE, today)
    print(f)
    assert (f.visitors, f.car_browsers, f.car_entrants, f.receptions) == (59, 46, 11, 40)
    assert f.browse_rate is not None and round(100 * f.browse_rate, 2) == 77.97
    assert f.car_entry_rate is not None and round(100 * f.car_entry_rate, 2) == 23.91
    assert f.dod.visitors is not None and round(100 * f.dod.visitors, 2) == 68.57
    assert f.dod.car_browsers is not None and round(100 * f.dod.car_browsers, 2) == 39.39
    assert f.dod.car_entrants is not None and round(100 * f.dod.car_entrants, 2) == 57.14
    assert f.day_before is not None and f.day_before.visitors == 35
    assert f.week_before is None and f.wow.visitors is None


def test_week_over_week_and_hourly(ingestor: Ingestor, db: str) -> None:
    last_week, today = date(2026, 11, 16), date(2026, 11, 23)
    ingestor.ingest(messages(day_events(last_week, 20, 10, 2, 5, seed=3)))
    ingestor.ingest(messages(day_events(today, 30, 12, 3, 6, seed=4)))
    with Queries.open(db) as q:
        f = q.funnel(STORE, today)
        hours = q.hourly_traffic(STORE, today)
        cars = q.car_ranking(STORE, today, today)
    assert f.wow.visitors == pytest.approx(0.5)
    assert len(hours) == 24 and sum(h.visitors for h in hours) == 30
    assert sum(h.last_week_visitors or 0 for h in hours) == 20
    assert {c.car_id for c in cars} == {"car-01", "car-02"}
    assert sum(c.browsers for c in cars) == 12 and sum(c.entries for c in cars) == 3
    assert all(c.dwell_median_s is not None and c.dwell_median_s >= 10 for c in cars)


def test_replay_and_redelivery_change_nothing(ingestor: Ingestor, db: str) -> None:
    day = date(2026, 11, 23)
    events = messages(day_events(day, 25, 15, 4, 10, seed=5))
    first = ingestor.ingest(events)
    again = ingestor.ingest(events)  # a full replay
    half = ingestor.ingest(events[::2])  # redelivery of some
    assert first.stored == len(events) and again.stored == 0 and half.stored == 0
    assert again.duplicates == len(events)
    with Queries.open(db) as q:
        f = q.funnel(STORE, day)
        assert (f.visitors, f.car_browsers, f.car_entrants, f.receptions) == (25, 15, 4, 10)
        assert q.counters()["duplicates"] == len(events) + len(events[::2])
        assert q.nodes()[0].seq_missing == 0
