"""One consistent snapshot per page: events committed while a page is being read cannot make its figures
disagree (the funnel, hourly traffic, cars and health all count the same visits)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from aggregator.ingest import Ingestor, Message
from aggregator.queries import HourTraffic, Queries
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from aggregator.synth import funnel_day_plans, local_midnight_utc, stamper_for, visit_events
from edge.events import to_json, topic_for

STORE = "sh-pudong-01"
TZ = "Asia/Shanghai"
DAY = date(2026, 11, 20)
AFTER_DAY = datetime(2026, 11, 21, 12, tzinfo=UTC)
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
                {"id": "car-01", "model_name": "Model S", "browse_zone_m": [[2, 3], [10, 3], [10, 9], [2, 9]]}
            ],
        }
    ],
}


def visits(ingestor: Ingestor, n: int, browsers: int, seed: int) -> None:
    """`n` visits on DAY (of which `browsers` browse car-01), through the real ingest path."""
    stamper = stamper_for(STORE, seed=seed)
    plans = funnel_day_plans(local_midnight_utc(DAY, TZ), n, browsers, 0, 0, seed=seed)
    events = [e for p in plans for e in visit_events(stamper, p)]
    ingestor.ingest([Message(topic_for(e), to_json(e), datetime.now(UTC)) for e in events])


class WriterBetweenReads(Queries):
    """Queries whose hourly read first lets a second process-like writer commit 10 more visits: the moment
    between two reads of one page, made deterministic."""

    def __init__(self, db: str, writer: Ingestor) -> None:
        super().__init__(open_storage(db, readonly=True))
        self.writer = writer
        self.seed = 100

    def hourly_traffic(self, store_id: str, day: date) -> list[HourTraffic]:
        self.seed += 1
        visits(self.writer, 10, 10, seed=self.seed)
        return super().hourly_traffic(store_id, day)


def writer(db: str) -> Ingestor:
    ing = Ingestor(open_storage(db))
    ing.load_registry(parse_registry(REGISTRY))
    return ing


def test_store_page_reads_one_snapshot(db: str) -> None:
    ing = writer(db)
    visits(ing, 20, 8, seed=1)
    with WriterBetweenReads(db, ing) as q:
        page = q.store_page(STORE, DAY, DAY, DAY, AFTER_DAY)
        after = q.funnel(STORE, DAY, AFTER_DAY)
    traffic = {d.name: d.value for d in page.health.dimensions}["traffic"]
    print(page.funnel.today, traffic, sum(h.visitors for h in page.hourly))
    assert page.funnel.today.visitors == 20
    assert sum(h.visitors for h in page.hourly) == 20
    assert traffic == 20.0
    assert sum(c.browsers for c in page.cars) == page.funnel.today.car_browsers == 8
    # The writer did commit in the middle of the page: a read after it sees the new visits.
    assert after.today.visitors == 30


def test_without_a_snapshot_the_same_reads_disagree(db: str) -> None:
    """The control: the same interleaving outside one snapshot gives two different visitor counts, so the
    test above would catch a page that read figure by figure."""
    ing = writer(db)
    visits(ing, 20, 8, seed=1)
    with WriterBetweenReads(db, ing) as q:
        funnel = q.funnel(STORE, DAY, AFTER_DAY)
        hourly = q.hourly_traffic(STORE, DAY)
        health = q.health(STORE, DAY, DAY)
        with q.snapshot():
            inside = q.funnel(STORE, DAY, AFTER_DAY)
            hourly_inside = q.hourly_traffic(STORE, DAY)
    assert funnel.today.visitors == 20 and sum(h.visitors for h in hourly) == 30
    assert {d.name: d.value for d in health.dimensions}["traffic"] == 30.0
    assert inside.today.visitors == 30 and sum(h.visitors for h in hourly_inside) == 30


def test_a_live_page_counts_today_as_stored(db: str) -> None:
    """A page read during a minute carries that minute as its time: visits stored in the seconds after it
    still count in the funnel as in the hourly chart and the health table, and the base days are cut at
    that minute."""
    ing = writer(db)
    visits(ing, 20, 8, seed=1)  # visits start 01:00-11:00 local
    minute = local_midnight_utc(DAY, TZ) + timedelta(hours=6)
    with Queries.open(db) as q:
        page = q.store_page(STORE, DAY, DAY, DAY, minute)
        cut = q.funnel(STORE, DAY, minute)
    assert page.funnel.partial and page.funnel.compared_until == "06:00"
    assert page.funnel.today.visitors == sum(h.visitors for h in page.hourly) == 20
    assert {d.name: d.value for d in page.health.dimensions}["traffic"] == 20.0
    assert cut.today.visitors < 20  # read as it stood at 06:00, the day had fewer
