"""The `showroom aggregator` commands end to end: stores load, ingest (replay), report, export, quarantine."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from aggregator.synth import funnel_day_plans, local_midnight_utc, stamper_for, visit_events
from edge.events import to_json, topic_for
from showroom.cli import main

STORE = "sh-pudong-01"
TZ = "Asia/Shanghai"


def write_registry(path: Path) -> None:
    path.write_text(
        f"""
brands:
  - {{id: aurora, name: Aurora Motors}}
stores:
  - store_id: {STORE}
    name: Pudong Flagship
    brand: aurora
    region: east
    timezone: {TZ}
    floor_size_m: [36, 24]
    cars:
      - {{id: car-01, model_name: Model S, browse_zone_m: [[2, 3], [10, 3], [10, 9], [2, 9]]}}
""",
        encoding="utf-8",
    )


def write_events(path: Path) -> int:
    stamper = stamper_for(STORE)
    lines = []
    for day, counts, seed in (
        (date(2026, 11, 22), (35, 33, 7, 20), 1),
        (date(2026, 11, 23), (59, 46, 11, 40), 2),
    ):
        for plan in funnel_day_plans(local_midnight_utc(day, TZ), *counts, seed=seed):
            for e in visit_events(stamper, plan):
                lines.append(to_json(e).decode())
    # One wrapped line with its topic, and two bad lines.
    e = visit_events(stamper, funnel_day_plans(local_midnight_utc(date(2026, 11, 21), TZ), 1, 0, 0)[0])[0]
    lines.append(json.dumps({"topic": topic_for(e), "payload": json.loads(to_json(e))}))
    lines.append("{broken")
    lines.append(json.dumps({"schema": "showroom.v9", "store_id": STORE, "node_id": "node-a", "type": "x"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 2


def test_cli_end_to_end(tmp_path: Path, db: str) -> None:
    runner = CliRunner()
    reg, events = tmp_path / "stores.yaml", tmp_path / "events.jsonl"
    write_registry(reg)
    good = write_events(events)
    r = runner.invoke(main, ["aggregator", "stores", "load", str(reg), "--db", str(db)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["aggregator", "ingest", str(events), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert f"stored {good}, duplicates 0, quarantined 2" in r.output and "not_json: 1" in r.output
    r = runner.invoke(main, ["aggregator", "ingest", str(events), "--db", str(db)])  # replay
    assert f"stored 0, duplicates {good}, quarantined 2" in r.output

    r = runner.invoke(
        main, ["aggregator", "report", "--db", str(db), "--store", STORE, "--date", "2026-11-23"]
    )
    assert r.exit_code == 0, r.output
    assert "77.97%" in r.output and "23.91%" in r.output and "+68.57%" in r.output and "+39.39%" in r.output
    assert "+57.14%" in r.output and "car-01" in r.output and "Health" in r.output
    r = runner.invoke(
        main,
        [
            "aggregator",
            "report",
            "--db",
            str(db),
            "--store",
            STORE,
            "--date",
            "2026-11-23",
            "--format",
            "json",
        ],
    )
    data = json.loads(r.output)
    assert data["funnel"]["today"]["visitors"] == 59 and data["funnel"]["day_before"]["visitors"] == 35
    assert data["cars"][0]["car_id"] == "car-01" and data["cars"][0]["browsers"] == 46
    assert len(data["health"]["dimensions"]) == 6 and len(data["hourly"]) == 24

    out_csv, out_pq = tmp_path / "daily.csv", tmp_path / "daily.parquet"
    for out in (out_csv, out_pq):
        r = runner.invoke(
            main,
            [
                "aggregator",
                "export",
                "--db",
                str(db),
                "--start",
                "2026-11-01",
                "--end",
                "2026-11-30",
                "--out",
                str(out),
            ],
        )
        assert r.exit_code == 0 and "wrote 3 row(s)" in r.output, r.output
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert [(x["day"], x["visitors"]) for x in rows] == [
        ("2026-11-21", "1"),
        ("2026-11-22", "35"),
        ("2026-11-23", "59"),
    ]
    table = pq.read_table(out_pq).to_pylist()
    assert [t["visitors"] for t in table] == [1, 35, 59] and table[2]["day"] == date(2026, 11, 23)
    r = runner.invoke(main, ["aggregator", "nodes", "--db", str(db)])
    # A backfill says nothing about whether the node reports now: offline, never heard live.
    assert r.exit_code == 0 and f"{STORE}/node-a  OFFLINE  last seen never" in r.output
    assert f"silent: {STORE} (Pudong Flagship): never reported" in r.output
    r = runner.invoke(main, ["aggregator", "quarantine", "--db", str(db)])
    assert '"quarantined": 4' in r.output and "schema" in r.output


def test_bad_registry_and_dates_are_named(tmp_path: Path) -> None:
    runner = CliRunner()
    reg = tmp_path / "stores.yaml"
    reg.write_text(
        "stores:\n  - {store_id: x, name: X, brand: b, region: r, timezone: Mars/Base}\n", encoding="utf-8"
    )
    r = runner.invoke(main, ["aggregator", "stores", "load", str(reg), "--db", str(tmp_path / "a.sqlite")])
    assert r.exit_code == 1 and "Mars/Base" in r.output
    r = runner.invoke(
        main, ["aggregator", "report", "--db", str(tmp_path / "a.sqlite"), "--store", "x", "--date", "23/11"]
    )
    assert r.exit_code == 2 and "YYYY-MM-DD" in r.output
