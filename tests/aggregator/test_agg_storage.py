"""Storage opened from a URL, and what goes wrong with a database: a URL taken for a file name, an
unreachable or refusing server, a database from newer software, a connection lost mid-batch."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from aggregator.ingest import Ingestor, Message
from aggregator.queries import Queries
from aggregator.storage import (
    SchemaTooNewError,
    StorageUnavailableError,
    open_storage,
    parse_database_url,
)
from aggregator.storage.postgres import PgStorage
from aggregator.storage.url import redact
from aggregator.synth import VisitPlan, stamper_for, visit_events
from edge.events import Envelope, TimeWindow, to_json, topic_for
from showroom.cli import main
from tests.netkit import free_port
from tests.pgkit import PasswordCluster

STORE = "st-storage"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def events(n_visits: int, store: str = STORE, start: datetime = NOW, seed: int = 1) -> list[Envelope]:
    stamper = stamper_for(store, seed=seed)
    return [
        e
        for i in range(n_visits)
        for e in visit_events(stamper, VisitPlan(start.replace(minute=i % 60), 120.0))
    ]


def messages(evs: list[Envelope]) -> list[Message]:
    return [Message(topic_for(e), to_json(e), NOW) for e in evs]


def with_database(url: str, name: str) -> str:
    """`url` naming another database on the same server."""
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.mark.parametrize(
    ("url", "engine", "target"),
    [
        ("agg.sqlite", "sqlite", "agg.sqlite"),
        ("sqlite:///data/agg.db", "sqlite", "data/agg.db"),
        ("sqlite:////var/lib/agg.db", "sqlite", "/var/lib/agg.db"),
        ("postgresql://u@h:5432/brand", "postgresql", "postgresql://u@h:5432/brand"),
        ("postgres://u@h/brand", "postgresql", "postgres://u@h/brand"),
    ],
)
def test_database_urls(url: str, engine: str, target: str) -> None:
    parsed = parse_database_url(url)
    assert (parsed.engine, parsed.target) == (engine, target)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql:/postgres@127.0.0.1:5432/brand", "malformed"),
        ("mysql://u@h/brand", "unsupported scheme 'mysql'"),
        ("postgresql://u@h:5432/", "names no database"),
        ("sqlite://", "has no file"),
    ],
)
def test_urls_that_are_not_databases_are_refused_not_taken_for_files(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_database_url(url)


def test_a_password_never_appears_in_messages() -> None:
    assert parse_database_url("postgresql://u:s3cret@h/brand").redacted == "postgresql://u:***@h/brand"


def test_cli_ingest_and_report_on_postgresql_write_no_file(
    db: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interface brand IT uses: `ingest FILE --db URL` then `report --db URL --format json`."""
    runner = CliRunner()
    evs = events(7)
    monkeypatch.chdir(tmp_path)
    Path("events.jsonl").write_text("\n".join(to_json(e).decode() for e in evs) + "\n", encoding="utf-8")
    r = runner.invoke(main, ["aggregator", "ingest", "events.jsonl", "--db", db])
    assert r.exit_code == 0, r.output
    assert f"stored {len(evs)}, duplicates 0" in r.output
    report = [
        "aggregator",
        "report",
        "--db",
        db,
        "--store",
        STORE,
        "--date",
        "2026-11-23",
        "--format",
        "json",
    ]
    r = runner.invoke(main, [*report, "--format", "json"])
    assert r.exit_code == 0, r.output
    assert '"visitors": 7' in r.output
    if backend == "postgresql":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]  # no postgresql:/ file


def test_cli_names_a_malformed_url_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("e.jsonl").write_text("", encoding="utf-8")
    r = CliRunner().invoke(main, ["aggregator", "ingest", "e.jsonl", "--db", "postgresql:/u@127.0.0.1/x"])
    assert r.exit_code != 0 and "malformed" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.jsonl"]


def test_unreachable_server_is_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://postgres@127.0.0.1:{port}/brand"
    with pytest.raises(StorageUnavailableError, match=f"cannot connect to {url}"):
        open_storage(url)
    r = CliRunner().invoke(
        main, ["aggregator", "report", "--db", url, "--store", "s", "--date", "2026-11-23"]
    )
    assert r.exit_code == 1 and f"cannot connect to {url}" in r.output and "Traceback" not in r.output


def test_refused_connection_names_the_reason(postgres_dsn: str) -> None:
    """A role or database the server does not know (with password authentication, a wrong password is
    refused the same way: the server's reason is in the message, the password is not)."""
    with pytest.raises(StorageUnavailableError, match='database "showroom_no_such_db" does not exist'):
        open_storage(with_database(postgres_dsn, "showroom_no_such_db"))
    nobody = postgres_dsn.replace("postgresql://postgres@", "postgresql://showroom_nobody:pw@")
    with pytest.raises(StorageUnavailableError) as err:
        open_storage(nobody)
    assert "showroom_nobody" in str(err.value) and ":pw@" not in str(err.value) and ":***@" in str(err.value)


def test_a_wrong_password_is_a_clear_error_and_writes_nothing(
    password_pg: PasswordCluster, tmp_path: Path
) -> None:
    """On a server that checks passwords (the machine's trusts everyone): ingest, the API and their
    migrations stop at the connection with the server's reason, the password nowhere in the output."""
    right = password_pg.create_role("brand_writer", "brand-writer-pass", "brand")
    wrong = right.replace(":brand-writer-pass@", ":WRONG-pass@")
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join(to_json(e).decode() for e in events(5)) + "\n", encoding="utf-8")
    later = events(4, start=NOW + timedelta(hours=1), seed=2)
    second.write_text("\n".join(to_json(e).decode() for e in later) + "\n", encoding="utf-8")
    runner = CliRunner()

    def refused(*command: str) -> None:
        r = runner.invoke(main, ["aggregator", *command, "--db", wrong])
        assert r.exit_code == 1, r.output
        assert f"cannot connect to {redact(wrong)}" in r.output
        assert 'password authentication failed for user "brand_writer"' in r.output
        assert "WRONG-pass" not in r.output and "Traceback" not in r.output

    refused("ingest", str(first))
    with psycopg.connect(password_pg.url(password_pg.superuser, password_pg.password, "brand")) as conn:
        untouched = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert untouched == (0,)  # not even migrated
    r = runner.invoke(main, ["aggregator", "ingest", str(first), "--db", right])
    assert r.exit_code == 0 and f"stored {len(events(5))}, duplicates 0" in r.output, r.output
    refused("ingest", str(second))
    refused("serve", "--port", str(free_port()))
    # Nothing of the refused file was written: all of it is new with the right password.
    r = runner.invoke(main, ["aggregator", "ingest", str(second), "--db", right])
    assert r.exit_code == 0 and f"stored {len(later)}, duplicates 0" in r.output, r.output


def test_a_database_from_newer_software_is_refused(db: str, backend: str) -> None:
    open_storage(db).close()
    future = "INSERT INTO schema_migrations VALUES (99, 'from the future', 'x')"
    if backend == "postgresql":
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(future)
    else:
        with sqlite3.connect(db) as conn:
            conn.execute(future)
    try:
        for readonly in (False, True):
            with pytest.raises(SchemaTooNewError, match="schema version 99, newer than this software's"):
                open_storage(db, readonly=readonly)
        for command in (["report", "--store", "s", "--date", "2026-11-23"], ["ingest", __file__]):
            r = CliRunner().invoke(main, ["aggregator", *command, "--db", db])
            assert r.exit_code == 1 and "schema version 99" in r.output and "Traceback" not in r.output
    finally:
        if backend == "postgresql":  # the database is emptied and reused
            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute("DELETE FROM schema_migrations WHERE version = 99")


def test_events_and_rollups_land_in_monthly_partitions(pg_databases: object) -> None:
    url = pg_databases.new()  # type: ignore[attr-defined]
    try:
        storage = open_storage(url)
        assert isinstance(storage, PgStorage)
        old = events(3, start=datetime(2024, 2, 10, 11, 0, tzinfo=UTC))
        # History from 2024, as a backfill of old files would bring it (past the live receipt window).
        Ingestor(storage, time_window=TimeWindow(max_past=timedelta(days=3650))).ingest(messages(old))
        for table in ("events", "daily_store", "hourly_store"):
            assert f"{table}_p2024_02" in storage.partition_names(table)
        with Queries.open(url) as q:
            assert q.funnel(STORE, date(2024, 2, 10)).visitors == 3
        storage.close()
    finally:
        pg_databases.release(url)  # type: ignore[attr-defined]


def _waiting_backends(conn: psycopg.Connection[tuple[object, ...]], dbname: str) -> list[int]:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", (dbname,)
    ).fetchall()
    return [int(r[0]) for r in rows]


def test_connection_lost_mid_batch_writes_nothing_then_the_batch_is_retried(pg_databases: object) -> None:
    """The server ends the batch's session (as a restart does) after its events were copied in: nothing of
    the batch is visible, the ingester retries it, and every event is stored once."""
    url = pg_databases.new()  # type: ignore[attr-defined]
    dbname = url.rsplit("/", 1)[1]
    ing = Ingestor(open_storage(url))
    ing.UNAVAILABLE_WAIT_S = 0.2
    evs = events(10)
    with psycopg.connect(url, autocommit=True) as blocker, psycopg.connect(url, autocommit=True) as admin:
        blocker.execute("INSERT INTO counters VALUES ('stored', 0)")
        blocker.execute("BEGIN")
        blocker.execute(
            "SELECT value FROM counters WHERE name = 'stored' FOR UPDATE"
        )  # the batch's last step
        result: list[object] = []
        worker = threading.Thread(target=lambda: result.append(ing.ingest_safe(messages(evs))))
        worker.start()
        deadline = time.monotonic() + 20
        while not (waiting := _waiting_backends(admin, dbname)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting, "the batch never reached its last step"
        admin.execute("SELECT pg_terminate_backend(%s)", (waiting[0],))
        time.sleep(0.1)
        assert admin.execute("SELECT count(*) FROM events").fetchone() == (0,)  # nothing half-written
        assert admin.execute("SELECT count(*) FROM visits").fetchone() == (0,)
        blocker.execute("COMMIT")  # the retry goes through
        worker.join(30)
    assert not worker.is_alive() and result and result[0].stored == len(evs)  # type: ignore[attr-defined]
    assert ing.storage.count_events() == len(evs)
    with Queries.open(url) as q:
        assert q.funnel(STORE, date(2026, 11, 23)).visitors == 10
        assert q.counters()["stored"] == len(evs)
    ing.storage.close()
    pg_databases.release(url)  # type: ignore[attr-defined]


def test_storages_of_one_process_share_a_pool(pg_databases: object) -> None:
    """The HTTP API opens storage per request thread: those share one pool of connections, closed with the
    last of them, instead of a pool (and its connections) per thread."""
    db = pg_databases.new()  # type: ignore[attr-defined]
    url = db + "?application_name=showroom-pool-test"  # a URL no other test's storage holds open
    try:
        a, b = open_storage(url, readonly=True), open_storage(url, readonly=True)
        assert isinstance(a, PgStorage) and isinstance(b, PgStorage) and a.pool is b.pool
        a.close()
        assert not b.pool.closed and b.count_events() == 0
        b.close()
        assert b.pool.closed
        writer = open_storage(url)
        assert isinstance(writer, PgStorage) and writer.pool is not a.pool  # writers have their own
        writer.close()
    finally:
        pg_databases.release(db)  # type: ignore[attr-defined]
