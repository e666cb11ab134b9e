"""Per-zone heat from known heat events: each car's browse zone, time inside cars, reception and the
entrance, ranked and compared with the period before."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from aggregator.synth import heat_event, local_midnight_utc, stamper_for
from aggregator.zones import FloorZone, compare_zones
from edge.events import to_json, topic_for

STORE = "sh-pudong-01"
TZ = "Asia/Shanghai"
DAY = date(2026, 11, 20)
BEFORE = DAY - timedelta(days=1)
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
                    "interior_zone_m": [[4, 4], [8, 4], [8, 8], [4, 8]],
                },
                {
                    "id": "car-02",
                    "model_name": "Model X",
                    "browse_zone_m": [[12, 3], [20, 3], [20, 9], [12, 9]],
                    "interior_zone_m": [[14, 4], [18, 4], [18, 8], [14, 8]],
                },
            ],
        }
    ],
}
RECEPTION = FloorZone("reception", "reception", "Reception", ((30, 20), (34, 20), (34, 23), (30, 23)))
ENTRANCE = FloorZone("entrance", "entrance", "Entrance", ((0, 20), (4, 20), (4, 24), (0, 24)))

# 0.25 m cells: (ix, iy) -> centre ((ix + 0.5) / 4, (iy + 0.5) / 4) metres.
CAR1_FLOOR = (10, 14)  # (2.6, 3.6): car-01's browse zone, outside its interior
CAR1_SEAT = (20, 20)  # (5.1, 5.1): inside car-01
CAR2_FLOOR = (50, 14)  # (12.6, 3.6)
DESK = (130, 85)  # (32.6, 21.4): reception
DOOR = (4, 84)  # (1.1, 21.1): entrance
AISLE = (100, 50)  # (25.1, 12.6): no zone


def heat(day: date, cells: list[tuple[tuple[int, int], float]], seed: int) -> list[Message]:
    stamper = stamper_for(STORE, seed=seed)
    minute = local_midnight_utc(day, TZ) + timedelta(hours=10)
    e = heat_event(stamper, minute, [(ix, iy, ps) for (ix, iy), ps in cells], 3)
    return [Message(topic_for(e), to_json(e), datetime.now(UTC))]


@pytest.fixture(scope="module")
def db(module_db: str) -> str:
    ing = Ingestor(open_storage(module_db))
    ing.load_registry(parse_registry(REGISTRY))
    ing.ingest(heat(BEFORE, [(CAR1_FLOOR, 20.0), (CAR2_FLOOR, 40.0), (DESK, 10.0), (CAR1_SEAT, 60.0)], 1))
    ing.ingest(
        heat(
            DAY,
            [
                (CAR1_FLOOR, 30.0),
                (CAR2_FLOOR, 20.0),
                (DESK, 45.0),
                (DOOR, 5.0),
                (AISLE, 7.0),
                (CAR1_SEAT, 60.0),
            ],
            2,
        )
    )
    ing.storage.close()
    return module_db


def test_zone_comparison_ranks_zones_period_over_period(db: str) -> None:
    with Queries.open(db) as q:
        result = q.zone_comparison(STORE, DAY, DAY, extra_zones=[RECEPTION, ENTRANCE])
    got = {f.zone.zone_id: f for f in result.zones}
    print([(f.rank, f.zone.zone_id, f.person_s, f.previous_person_s, f.change) for f in result.zones])
    assert (result.previous_start, result.previous_end) == (BEFORE, BEFORE)
    assert result.total_person_s == pytest.approx(167.0)
    assert [f.zone.zone_id for f in result.zones] == [
        "car-01.interior",
        "reception",
        "car-01.browse",
        "car-02.browse",
        "entrance",
        "car-02.interior",
    ]
    assert got["car-01.browse"].person_s == 30.0 and got["car-01.browse"].previous_person_s == 20.0
    assert got["car-01.browse"].change == pytest.approx(0.5)
    assert got["car-02.browse"].change == pytest.approx(-0.5) and got["car-02.browse"].previous_rank == 2
    assert got["reception"].person_s == 45.0 and got["reception"].change == pytest.approx(3.5)
    assert got["reception"].previous_rank == 4 and got["reception"].rank == 2
    assert got["entrance"].previous_person_s == 0.0 and got["entrance"].change is None
    assert got["car-01.interior"].zone.kind == "car_interior" and got["car-01.interior"].person_s == 60.0
    # Areas: cells whose centre is inside. The browse zone is 8 x 6 m less its 4 x 4 m interior.
    assert got["car-01.browse"].area_m2 == pytest.approx(48.0 - 16.0)
    assert got["reception"].area_m2 == pytest.approx(12.0)
    assert got["reception"].person_s_per_m2 == pytest.approx(45.0 / 12.0)
    assert got["reception"].share == pytest.approx(45.0 / 167.0)


def test_zone_rules() -> None:
    with pytest.raises(ValueError, match="3 or more points"):
        FloorZone("x", "other", "X", ((0, 0), (1, 1)))
    grid = np.zeros((8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="unique"):
        compare_zones(grid, grid, 0.5, [RECEPTION, RECEPTION])
    # No heat before: no base, no previous rank; no heat now: no share.
    figures = compare_zones(grid, np.zeros((0, 0), dtype=np.float32), 0.5, [ENTRANCE])
    assert figures[0].previous_person_s is None and figures[0].share is None and figures[0].change is None
