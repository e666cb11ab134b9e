"""Health score (DOMAIN.md): six dimensions vs the brand TOP (p90) and average, weights, league."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from aggregator.health import brand_top, score, weighted_health, weighted_healths
from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.registry import DIMENSIONS, parse_registry
from aggregator.storage import open_storage
from aggregator.synth import funnel_day_plans, local_midnight_utc, stamper_for, visit_events
from edge.events import to_json, topic_for

TZ = "Asia/Shanghai"
DAY = date(2026, 11, 23)
CAR = {"id": "car-01", "model_name": "Model S", "browse_zone_m": [[0, 0], [4, 0], [4, 4], [0, 4]]}


def test_score_math() -> None:
    assert brand_top([10.0]) == 10.0
    assert brand_top([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == pytest.approx(9.1)  # linear interpolation
    assert score(5.0, 10.0) == 50.0 and score(12.0, 10.0) == 100.0 and score(0.0, 0.0) == 0.0
    assert score(None, 10.0) is None
    weights = dict.fromkeys(DIMENSIONS, 1.0) | {"traffic": 3.0}
    scores = dict.fromkeys(DIMENSIONS, 50.0) | {"traffic": 100.0, "heat": None}
    assert weighted_health(scores, weights) == pytest.approx((300 + 4 * 50) / 7)


def test_many_stores_scored_at_once_equal_one_by_one_bit_for_bit() -> None:
    """The league scores thousands of stores in one numpy pass: every figure equals `weighted_health` of
    the store's own scores exactly (same products, same order), with missing values, a TOP of 0, a missing
    TOP, a zero weight and scores capped at 100."""
    rng = np.random.default_rng(7)
    values = rng.uniform(0.0, 3000.0, size=(500, len(DIMENSIONS))) * rng.uniform(0, 1, size=len(DIMENSIONS))
    values[rng.uniform(size=values.shape) < 0.2] = np.nan
    values[3] = np.nan  # a store without a single value: no score
    for tops, weights in [
        (
            list(np.nanpercentile(values, 90.0, axis=0)),
            dict(zip(DIMENSIONS, rng.uniform(0.1, 3, 6), strict=True)),
        ),
        ([0.0, None, 500.0, 1e-3, 2000.0, 10.0], dict.fromkeys(DIMENSIONS, 1.0) | {"activity": 0.0}),
    ]:
        found = weighted_healths(values, tops, weights)
        for row, got in zip(values, found, strict=True):
            scores = {
                d: score(None if np.isnan(v) else float(v), t)
                for d, v, t in zip(DIMENSIONS, row, tops, strict=True)
            }
            want = weighted_health(scores, weights)
            assert (None if np.isnan(got) else float(got)) == want
        assert np.isnan(found[3])
        assert np.nanmax(found) <= 100.0


def _store(store_id: str, brand: str, region: str) -> dict[str, object]:
    return {
        "store_id": store_id,
        "name": store_id,
        "brand": brand,
        "region": region,
        "timezone": TZ,
        "cars": [CAR],
    }


def test_health_against_brand_top_and_average(db: str) -> None:
    ing = Ingestor(open_storage(db))
    stores = [_store(f"s{i}", "aurora", "east" if i < 2 else "west") for i in range(4)] + [
        _store("solo", "other", "x")
    ]
    ing.load_registry(
        parse_registry(
            {
                "brands": [{"id": "aurora", "name": "Aurora", "health_weights": {"traffic": 2}}],
                "stores": stores,
            }
        )
    )
    funnels = {
        "s0": (10, 5, 1, 2),
        "s1": (20, 10, 5, 10),
        "s2": (40, 30, 3, 20),
        "s3": (80, 40, 20, 40),
        "solo": (5, 5, 1, 1),
    }
    for n, (store, (v, b, e, r)) in enumerate(funnels.items()):
        plans = funnel_day_plans(local_midnight_utc(DAY, TZ), v, b, e, r, seed=n)
        stamper = stamper_for(store, seed=n)
        events = [x for p in plans for x in visit_events(stamper, p)]
        ing.ingest([Message(topic_for(x), to_json(x), datetime.now(UTC)) for x in events])
    with Queries.open(db) as q:
        h = q.health("s0", DAY, DAY)
        solo = q.health("solo", DAY, DAY)
        league = q.league(DAY, DAY, brand="aurora")
        east = q.league(DAY, DAY, brand="aurora", region="east")
        # The league's health is the store's own health score, to the last bit.
        everyone = q.league(DAY, DAY)
        assert [r.health for r in everyone] == [q.health(r.store.store_id, DAY, DAY).score for r in everyone]
    dims = {d.name: d for d in h.dimensions}
    traffic = [10, 20, 40, 80]
    assert dims["traffic"].value == 10 and dims["traffic"].brand_top == pytest.approx(brand_top(traffic))
    assert dims["traffic"].brand_average == pytest.approx(37.5)
    assert dims["traffic"].score == pytest.approx(100 * 10 / brand_top(traffic))
    assert dims["traffic"].weight == 2.0 and dims["activity"].weight == 1.0
    activity = [0.5, 0.5, 0.75, 0.5]
    assert dims["activity"].value == 0.5 and dims["activity"].brand_top == pytest.approx(brand_top(activity))
    car_entry = [1 / 5, 5 / 10, 3 / 30, 20 / 40]
    assert dims["car_entry"].brand_top == pytest.approx(brand_top(car_entry))
    assert dims["heat"].value is not None and dims["heat"].value > 0
    assert dims["attractiveness"].value is not None
    expected = weighted_health(
        {d.name: d.score for d in h.dimensions}, {d.name: d.weight for d in h.dimensions}
    )
    assert h.score == pytest.approx(expected) and h.brand_stores == 4
    # A store alone in its brand scores against itself: 100 on every dimension it has.
    assert all(d.score == 100.0 for d in solo.dimensions if d.value) and solo.brand_stores == 1
    assert [r.rank for r in league] == [1, 2, 3, 4] and {r.store.store_id for r in league} == {
        "s0",
        "s1",
        "s2",
        "s3",
    }
    assert [r.health for r in league] == sorted((r.health for r in league), key=lambda x: -(x or 0))
    assert {r.store.store_id for r in east} == {"s0", "s1"}
    # Region filter does not change the comparison base: scores are within the whole brand.
    assert {r.store.store_id: r.health for r in east} == {
        r.store.store_id: r.health for r in league if r.store.store_id in ("s0", "s1")
    }


def test_cached_league_sees_new_data(db: str) -> None:
    ing = Ingestor(open_storage(db))
    ing.load_registry(
        parse_registry({"stores": [_store("s0", "aurora", "east"), _store("s1", "aurora", "east")]})
    )

    def day_of(store: str, visitors: int, seed: int) -> None:
        plans = funnel_day_plans(local_midnight_utc(DAY, TZ), visitors, 0, 0, 0, seed=seed)
        stamper = stamper_for(store, seed=seed)
        events = [x for p in plans for x in visit_events(stamper, p)]
        ing.ingest([Message(topic_for(x), to_json(x), datetime.now(UTC)) for x in events])

    day_of("s0", 3, 1)
    with Queries.open(db) as q:
        first = {r.store.store_id: r.figures.visitors for r in q.league(DAY, DAY)}
        assert q.league(DAY, DAY)[0].figures == q.league(DAY, DAY)[0].figures  # served from the cache
        day_of("s1", 4, 2)  # another connection commits: the cache must not hide it
        second = {r.store.store_id: r.figures.visitors for r in q.league(DAY, DAY)}
    assert first == {"s0": 3, "s1": 0} and second == {"s0": 3, "s1": 4}
