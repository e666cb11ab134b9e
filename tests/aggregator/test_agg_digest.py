"""`showroom aggregator digest`: the DOMAIN.md store-day as a summary a manager can forward."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner

from aggregator.ingest import Ingestor, Message
from aggregator.registry import parse_registry
from aggregator.storage import open_storage
from aggregator.synth import funnel_day_plans, local_midnight_utc, stamper_for, visit_events
from edge.events import to_json, topic_for
from showroom.cli import main

STORE = "sh-pudong-01"
TZ = "Asia/Shanghai"
DAY = date(2026, 11, 23)
CARS = [
    {"id": "car-01", "model_name": "Model S", "browse_zone_m": [[2, 3], [10, 3], [10, 9], [2, 9]]},
    {"id": "car-02", "model_name": "Model X", "browse_zone_m": [[12, 3], [20, 3], [20, 9], [12, 9]]},
    {"id": "car-03", "model_name": "Roadster", "browse_zone_m": [[22, 3], [30, 3], [30, 9], [22, 9]]},
]
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
            "cars": CARS,
        }
    ],
}


@pytest.fixture(scope="module")
def db(module_db: str) -> str:
    """One world, built once per backend and only read by the tests."""
    ing = Ingestor(open_storage(module_db))
    ing.load_registry(parse_registry(REGISTRY))
    # DOMAIN.md's screen: 59 / 46 / 11 today, 35 / 33 / 7 the day before; car-03 browsed by nobody today.
    for day, funnel, seed in ((date(2026, 11, 22), (35, 33, 7, 20), 1), (DAY, (59, 46, 11, 40), 2)):
        stamper = stamper_for(STORE, seed=seed)
        plans = funnel_day_plans(local_midnight_utc(day, TZ), *funnel, cars=("car-01", "car-02"), seed=seed)
        events = [e for p in plans for e in visit_events(stamper, p)]
        ing.ingest([Message(topic_for(e), to_json(e), datetime.now(UTC)) for e in events])
    ing.storage.close()
    return module_db


def run(db: str, *extra: str) -> str:
    r = CliRunner().invoke(
        main, ["aggregator", "digest", "--db", str(db), "--store", STORE, "--date", DAY.isoformat(), *extra]
    )
    assert r.exit_code == 0, r.output
    return r.output


def test_digest_json(db: str) -> None:
    data = json.loads(run(db, "--format", "json"))
    f = data["funnel"]
    assert data["partial"] is False and data["store"]["name"] == "Pudong Flagship"
    assert (f["today"]["visitors"], f["today"]["car_browsers"], f["today"]["car_entrants"]) == (59, 46, 11)
    assert round(100 * f["dod"]["visitors"], 2) == 68.57 and round(100 * f["dod"]["car_browsers"], 2) == 39.39
    assert f["dod"]["browse_rate_pp"] == pytest.approx(100 * (46 / 59 - 33 / 35))
    assert f["wow"]["visitors"] is None  # no data a week before
    browsers = {c["car_id"]: c["browsers"] for c in data["top_cars"]}
    assert sum(browsers.values()) == 46 and browsers["car-03"] == 0
    assert data["ignored_cars"] == ["car-03"]
    assert data["health"]["brand_stores"] == 1 and data["health"]["score"] is not None
    notable = data["notable"]
    figures = {(n["figure"], n["against"]) for n in notable if "figure" in n}
    # +68.57% visitors, +39.39% browsers, +57.14% entrants, -16.32 pp browse rate; the car-entry rate moved
    # 23.91% - 21.21% = +2.70 pp: under the 5-point bar.
    assert {
        ("visitors", "day_before"),
        ("car_browsers", "day_before"),
        ("car_entrants", "day_before"),
    } <= figures
    assert ("browse_rate_pp", "day_before") in figures and ("car_entry_rate_pp", "day_before") not in figures
    assert {"car_ignored": "car-03", "model_name": "Roadster"} in notable
    assert any(n.get("audit_stale") for n in notable)  # never audited


def test_digest_markdown(db: str) -> None:
    text = run(db)
    print(text)
    assert text.startswith("# Pudong Flagship — 2026-11-23\n")
    assert "| Visitors | 59 | +68.57% | – |" in text
    assert "| Browse rate | 77.97% | -16.32 pp | – |" in text
    assert "- Nobody browsed Roadster" in text and "- The door count was never audited" in text


def test_digest_of_a_morning_says_so(db: str) -> None:
    data = json.loads(run(db, "--format", "json", "--as-of", "2026-11-23T09:10"))
    assert data["partial"] is True and data["compared_until"] == "09:10"
    assert data["funnel"]["day_before_until"] == "2026-11-22T01:10:00.000Z"
    # The day as it stood at 09:10: the same figures as the report's, not the whole stored day.
    report_args = [
        "--store",
        STORE,
        "--date",
        DAY.isoformat(),
        "--as-of",
        "2026-11-23T09:10",
        "--format",
        "json",
    ]
    report = CliRunner().invoke(main, ["aggregator", "report", "--db", str(db), *report_args])
    assert data["funnel"]["today"] == json.loads(report.output)["funnel"]["today"]
    assert data["funnel"]["today"]["visitors"] < 59
    assert "until 09:10" in run(db, "--as-of", "2026-11-23T09:10")


def test_digest_errors_name_what_was_wrong(db: str) -> None:
    r = CliRunner().invoke(
        main, ["aggregator", "digest", "--db", str(db), "--store", "nope", "--date", DAY.isoformat()]
    )
    assert r.exit_code == 2 and "unknown store 'nope'" in r.output
