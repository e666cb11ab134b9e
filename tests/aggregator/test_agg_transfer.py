"""`showroom aggregator migrate`: a pilot's SQLite history copied into PostgreSQL, checked by counts and by
rollups recomputed from the copied raw events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.queries import Queries
from aggregator.storage import open_storage
from aggregator.tokens import Scope, TokenBook
from showroom.cli import main
from tests.aggregator.test_agg_cli import STORE, write_events, write_registry
from tests.pgkit import PgDatabases


def test_pilot_history_moves_to_postgresql(tmp_path: Path, pg_databases: PgDatabases) -> None:
    runner = CliRunner()
    pilot, reg, events = tmp_path / "pilot.sqlite", tmp_path / "stores.yaml", tmp_path / "events.jsonl"
    write_registry(reg)
    good = write_events(events)
    for args in (["stores", "load", str(reg)], ["ingest", str(events)]):
        r = runner.invoke(main, ["aggregator", *args, "--db", str(pilot)])
        assert r.exit_code == 0, r.output
    window = ["--start", "2026-11-23T10:00", "--end", "2026-11-23T11:00"]
    audit = ["aggregator", "audit", "record", "--db", str(pilot), "--store", STORE, *window]
    r = runner.invoke(main, [*audit, "--manual-in", "7", "--auditor", "Li"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["aggregator", "token", "create", "--db", str(pilot), "--store", STORE])
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    target = pg_databases.new()
    try:
        r = runner.invoke(main, ["aggregator", "migrate", "--from", f"sqlite:///{pilot}", "--to", target])
        assert r.exit_code == 0, r.output
        assert (
            f"copied {good} events, 1 store(s), 1 brand(s), 2 quarantined payload(s), 1 audit(s), "
            "1 API token(s)" in r.output
        )
        assert f"check: events {good} -> {good}; 3 store-day rollups recomputed, 0 differ" in r.output
        reports = []
        for db in (str(pilot), target):
            r = runner.invoke(
                main,
                [
                    "aggregator",
                    "report",
                    "--db",
                    db,
                    "--store",
                    STORE,
                    "--date",
                    "2026-11-23",
                    "--as-of",
                    "2026-12-01T00:00:00+08:00",
                    "--format",
                    "json",
                ],
            )
            assert r.exit_code == 0, r.output
            reports.append(json.loads(r.output))
        assert reports[0] == reports[1]
        with Queries.open(str(pilot)) as a, Queries.open(target) as b:
            assert [x.reason_code for x in a.quarantine()] == [x.reason_code for x in b.quarantine()]
            assert [(x.manual_in, x.system_in) for x in a.audits()] == [
                (x.manual_in, x.system_in) for x in b.audits()
            ]
            assert a.counters() == b.counters()
            # The token given out on the pilot reads the same store on the copy (only its hash moved).
            assert TokenBook().scope_of(token, b.storage) == Scope(store=STORE)
        # A second copy into the same target is refused: it would double the quarantine and audits.
        r = runner.invoke(main, ["aggregator", "migrate", "--from", str(pilot), "--to", target])
        assert r.exit_code == 1 and "already holds events" in r.output
    finally:
        pg_databases.release(target)


def test_a_copy_that_differs_from_its_source_is_reported(tmp_path: Path, pg_databases: PgDatabases) -> None:
    """The check is real: a pilot whose stored rollup disagrees with its raw events fails the copy."""
    runner = CliRunner()
    pilot, events = tmp_path / "pilot.sqlite", tmp_path / "events.jsonl"
    write_events(events)
    assert runner.invoke(main, ["aggregator", "ingest", str(events), "--db", str(pilot)]).exit_code == 0
    storage = open_storage(pilot)
    with storage.transaction():
        row = storage.daily_rows([STORE], "2026-11-22", "2026-11-22")[0]
        storage.write_daily([(*row[:2], row[2] + 1, *row[3:])])  # one visitor too many
    storage.close()
    target = pg_databases.new()
    try:
        r = runner.invoke(main, ["aggregator", "migrate", "--from", str(pilot), "--to", target])
        assert r.exit_code == 1 and "1 differ" in r.output and "does not match its source" in r.output
    finally:
        pg_databases.release(target)


@pytest.mark.parametrize("url", ["postgresql:/x", "mysql://u@h/x"])
def test_migrate_names_a_bad_url(url: str, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["aggregator", "migrate", "--from", url, "--to", str(tmp_path / "t.sqlite")])
    assert r.exit_code == 2 and "--from" in r.output
