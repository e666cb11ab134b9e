"""`showroom aggregator ...`: load the stores registry, run the MQTT ingester, backfill, report, export,
serve the HTTP API."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType

import click

from aggregator.api_limits import ApiLimits
from aggregator.audit import STALE_AFTER, AuditError, audit_of, record_audit
from aggregator.ingest import MAX_SEQ_JUMP, Ingestor, RebuildError
from aggregator.queries import Queries
from aggregator.registry import RegistryError, load_registry
from aggregator.storage import StorageBackend, StorageError, open_storage, parse_database_url
from aggregator.storage.records import AuditRecord
from aggregator.timebuckets import ts_key, zone
from edge.events import TimeWindow

log = logging.getLogger(__name__)


def _database_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        parse_database_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


DB_OPTION = click.option(
    "--db",
    "db_path",
    required=True,
    callback=_database_url,
    help="Aggregator database: an SQLite file (path or sqlite:///path) or postgresql://USER@HOST:PORT/NAME.",
)


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a YYYY-MM-DD date") from exc


def _queries(db_path: str) -> Queries:
    try:
        return Queries.open(db_path)
    except (FileNotFoundError, StorageError) as exc:
        raise click.ClickException(str(exc)) from exc


def _storage(db_path: str) -> StorageBackend:
    """The database opened for writing (migrated); a clear error if it cannot be."""
    try:
        return open_storage(db_path)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("aggregator")
def aggregator_group() -> None:
    """The central aggregator: MQTT ingest, storage, rollups, reports and the HTTP API."""


@aggregator_group.group("stores")
def stores_group() -> None:
    """The stores registry (brands, regions, time zones, floors, display cars)."""


@stores_group.command("load")
@click.argument("registry_file", type=click.Path(path_type=Path))
@DB_OPTION
def stores_load(registry_file: Path, db_path: str) -> None:
    """Load (or update) the registry from a YAML file; rebuilds stores whose time zone changed."""
    try:
        registry = load_registry(registry_file)
    except RegistryError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    ing = Ingestor(_storage(db_path))
    try:
        rebuilt = ing.load_registry(registry)
    except RebuildError as exc:
        click.echo(f"{registry_file}: not loaded: {exc}", err=True)
        sys.exit(1)
    finally:
        ing.storage.close()
    click.echo(
        f"loaded {len(registry.stores)} store(s), {len(registry.brands)} brand(s)"
        + (f"; rebuilt {', '.join(rebuilt)}" if rebuilt else "")
    )


@stores_group.command("list")
@DB_OPTION
def stores_list(db_path: str) -> None:
    """List the stores."""
    with _queries(db_path) as q:
        for s in q.stores():
            click.echo(f"{s.store_id}\t{s.brand}\t{s.region}\t{s.timezone}\t{len(s.cars)} car(s)\t{s.name}")


class _Account:
    """The aggregator's broker account file (`showroom hardware broker-config` writes it): `username`,
    `password_file` (relative to the account file's folder), optionally `share_group` and `broker_url`."""

    def __init__(self, path: Path) -> None:
        from edge.strict_yaml import YamlFileError, load_yaml_file

        try:
            data = load_yaml_file(path)
        except YamlFileError as exc:
            raise click.BadParameter(f"{path}: {exc}", param_hint="--account") from exc
        if not isinstance(data, dict) or not isinstance(data.get("username"), str):
            raise click.BadParameter(f"{path}: expected a mapping with a `username`", param_hint="--account")
        unknown = sorted(set(data) - {"username", "password_file", "share_group", "broker_url"})
        if unknown:
            raise click.BadParameter(f"{path}: unknown key(s) {', '.join(unknown)}", param_hint="--account")
        self.username: str = data["username"]
        password_file = data.get("password_file")
        self.password_file = None if password_file is None else path.parent / Path(str(password_file))
        self.share_group: str | None = data.get("share_group")
        self.broker_url: str | None = data.get("broker_url")


def _read_password_file(path: Path, option: str) -> str:
    """The password on the first line of a secret file that only its owner can read (0600)."""
    from aggregator.tokens import SecretFileError, read_secret_file

    try:
        return read_secret_file(path)[0]
    except SecretFileError as exc:
        raise click.BadParameter(f"{exc} (the password is its first line)", param_hint=option) from exc


def _explicit(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (
        click.core.ParameterSource.DEFAULT,
        click.core.ParameterSource.DEFAULT_MAP,
    )


@aggregator_group.command("run")
@click.option(
    "--broker", "broker_url", default=None, help="mqtt://host:port or mqtts://host:port (or from --account)."
)
@DB_OPTION
@click.option(
    "--protocol",
    type=click.Choice(["auto", "5", "3.1.1"]),
    default="auto",
    show_default=True,
    help="auto: MQTT 5 (shared subscription), falling back to 3.1.1 (plain) if the broker refuses it.",
)
@click.option("--share-group", default="showroom-aggregator", show_default=True, help="MQTT 5 shared group.")
@click.option("--client-id", default="showroom-aggregator", show_default=True)
@click.option("--username", default=None, help="Broker user name.")
@click.option(
    "--password-env", default="SHOWROOM_MQTT_PASSWORD", show_default=True, help="Env var with the password."
)
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File whose first line is the password (wins over --password-env).",
)
@click.option(
    "--account",
    "account_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The account file `showroom hardware broker-config` wrote (BROKER_DIR/aggregator.yaml): user name, "
    "password file, share group and broker URL; options given explicitly win.",
)
@click.option(
    "--writer",
    type=click.Choice(["process", "thread"]),
    default="process",
    show_default=True,
    help="process: validate and store in a child process, so receiving and storing use two cores; "
    "thread: everything in this process (one-core machines).",
)
@click.option(
    "--max-age-days",
    type=click.IntRange(1, 3650),
    default=TimeWindow().max_past.days,
    show_default=True,
    help="Payloads with a timestamp older than this before their receipt are quarantined (time_window): "
    "raise it to take in nodes' backlogs after a longer outage.",
)
@click.option(
    "--max-ahead-hours",
    type=click.FloatRange(0, 24 * 30),
    default=TimeWindow().max_future.total_seconds() / 3600,
    show_default=True,
    help="Payloads with a timestamp further ahead of their receipt are quarantined (a node's clock wrong).",
)
@click.pass_context
def run(
    ctx: click.Context,
    broker_url: str | None,
    db_path: str,
    protocol: str,
    share_group: str,
    client_id: str,
    username: str | None,
    password_env: str,
    password_file: Path | None,
    account_file: Path | None,
    writer: str,
    max_age_days: int,
    max_ahead_hours: float,
) -> None:
    """Subscribe to every store's topics and ingest until SIGINT/SIGTERM."""
    from aggregator.mqtt import MqttIngestService
    from aggregator.writer import ProcessWriter, WriterDiedError

    password = os.environ.get(password_env)
    if account_file is not None:
        account = _Account(account_file)
        username = username if _explicit(ctx, "username") else account.username
        broker_url = broker_url or account.broker_url
        if account.share_group and not _explicit(ctx, "share_group"):
            share_group = account.share_group
        if account.password_file is not None and password_file is None and not _explicit(ctx, "password_env"):
            password = _read_password_file(account.password_file, "--account")
    if password_file is not None:
        password = _read_password_file(password_file, "--password-file")
    if broker_url is None:
        raise click.UsageError("give --broker (or an --account file with a broker_url)")
    window = TimeWindow(max_past=timedelta(days=max_age_days), max_future=timedelta(hours=max_ahead_hours))
    service = MqttIngestService(
        ProcessWriter(db_path, refresh_interval_s=1.0, time_window=window)
        if writer == "process"
        else Ingestor(_storage(db_path), refresh_interval_s=1.0, time_window=window),
        broker_url,
        protocol="5" if protocol == "5" else "3.1.1" if protocol == "3.1.1" else "auto",
        share_group=share_group,
        client_id=client_id,
        username=username,
        password=password,
    )

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        service.stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        totals = service.run()
    except WriterDiedError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"stopped: received {service.received}, stored {totals.stored}, duplicates {totals.duplicates}, "
        f"quarantined {totals.quarantined}"
    )


@aggregator_group.command("ingest")
@click.argument("events_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DB_OPTION
@click.option(
    "--max-age-days",
    type=click.IntRange(1, 3650),
    default=TimeWindow().max_past.days,
    show_default=True,
    help="Payloads with a timestamp older than this (from now) are quarantined (time_window).",
)
@click.option(
    "--max-seq-jump",
    type=click.IntRange(1, 2**62),
    default=MAX_SEQ_JUMP,
    show_default=True,
    help="A seq further than this past a node's highest stored one is quarantined (seq_jump).",
)
def ingest(events_file: Path, db_path: str, max_age_days: int, max_seq_jump: int) -> None:
    """Backfill or replay a JSON-lines file (bare payloads, or {"topic", "payload"} lines); same validation
    and quarantine as MQTT. Replaying a file twice stores nothing new."""
    window = TimeWindow(max_past=timedelta(days=max_age_days))
    ing = Ingestor(_storage(db_path), time_window=window, max_seq_jump=max_seq_jump)
    try:
        with events_file.open("rb") as fh:
            result = ing.ingest_lines(fh, source=f"file:{events_file.name}")
    except StorageError as exc:  # every batch committed before stays; replaying the file stores the rest
        raise click.ClickException(f"{exc} (stored so far: {ing.totals.stored}; replay the file)") from exc
    finally:
        ing.storage.close()
    click.echo(
        f"stored {result.stored}, duplicates {result.duplicates}, quarantined {result.quarantined}"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in sorted(result.reasons.items()))})"
            if result.reasons
            else ""
        )
    )


def _log_progress(events: int) -> None:
    log.info("copied %d events", events)


@aggregator_group.command("migrate")
@click.option("--from", "source_url", required=True, callback=_database_url, help="The pilot's database.")
@click.option("--to", "target_url", required=True, callback=_database_url, help="An empty database.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=5000, show_default=True)
def migrate(source_url: str, target_url: str, batch_size: int) -> None:
    """Copy a database's whole history into another (an SQLite pilot into PostgreSQL): registry, raw events
    (rollups recomputed from them), quarantine, audits; then check counts and every store-day's rollups."""
    from aggregator.transfer import copy_history

    try:
        source = open_storage(source_url, readonly=True)
    except (FileNotFoundError, StorageError) as exc:
        raise click.ClickException(str(exc)) from exc
    target = _storage(target_url)
    try:
        report = copy_history(
            source, target, batch_size=batch_size, progress=lambda n: log.info("%d events", n)
        )
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        source.close()
        target.close()
    click.echo(
        f"copied {report.events} events, {report.stores} store(s), {report.brands} brand(s), "
        f"{report.quarantine_rows} quarantined payload(s), {report.audits} audit(s), "
        f"{report.api_tokens} API token(s)"
    )
    click.echo(
        f"check: events {report.source_events} -> {report.target_events}; "
        f"{report.daily_rows_compared} store-day rollups recomputed, {len(report.mismatches)} differ"
    )
    for line in report.mismatches[:20]:
        click.echo(f"  {line}", err=True)
    if not report.verified:
        raise click.ClickException("the copy does not match its source (see above)")


@aggregator_group.command("report")
@DB_OPTION
@click.option("--store", "store_id", required=True)
@click.option("--date", "day", required=True, callback=_date, help="Store-local day, YYYY-MM-DD.")
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="table", show_default=True)
@click.option("--health-days", type=click.IntRange(1, 400), default=30, show_default=True)
@click.option(
    "--as-of",
    "as_of_text",
    default=None,
    help="Read the figures as they stood at this instant: RFC 3339 (2026-11-20T10:00:00+08:00); a time "
    "without an offset is the store's local time. Default: now. A day still in progress at it is compared "
    "with earlier days up to the same local time.",
)
def report(
    db_path: str, store_id: str, day: date, fmt: str, health_days: int, as_of_text: str | None
) -> None:
    """The day's funnel with day-over-day and week-over-week, the per-car table and health vs the brand."""
    from aggregator.report import report_data, report_text

    with _queries(db_path) as q:
        as_of = _as_of(q, store_id, as_of_text)
        try:
            if fmt == "json":
                data = report_data(q, store_id, day, health_days, as_of)
                click.echo(json.dumps(data, indent=2, ensure_ascii=False))
            else:
                click.echo(report_text(q, store_id, day, health_days, as_of))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--as-of") from exc


@aggregator_group.command("digest")
@DB_OPTION
@click.option("--store", "store_id", required=True)
@click.option("--date", "day", required=True, callback=_date, help="Store-local day, YYYY-MM-DD.")
@click.option(
    "--format", "fmt", type=click.Choice(["json", "markdown"]), default="markdown", show_default=True
)
@click.option(
    "--as-of",
    "as_of_text",
    default=None,
    help="Read the day as it stood at this instant (RFC 3339; without an offset: the store's local time). "
    "Default: now.",
)
def digest(db_path: str, store_id: str, day: date, fmt: str, as_of_text: str | None) -> None:
    """A store-day summary a manager can forward: funnel with comparisons, top cars, health, notable
    changes."""
    from aggregator.digest import digest_data, digest_markdown

    with _queries(db_path) as q:
        as_of = _as_of(q, store_id, as_of_text)
        try:
            data = digest_data(q, store_id, day, as_of)
        except KeyError as exc:
            raise click.BadParameter(f"unknown store {store_id!r}", param_hint="--store") from exc
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--as-of") from exc
        if fmt == "json":
            click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            click.echo(digest_markdown(data), nl=False)


def _as_of(q: Queries, store_id: str, value: str | None) -> datetime | None:
    """`--as-of` as an aware instant (a time without an offset read in the store's zone); None: now."""
    if value is None:
        return None
    try:
        timezone = q.store(store_id).timezone
    except KeyError as exc:
        raise click.BadParameter(f"unknown store {store_id!r}", param_hint="--store") from exc
    return _instant(value, "--as-of", timezone)


@aggregator_group.command("export")
@DB_OPTION
@click.option("--start", required=True, callback=_date)
@click.option("--end", required=True, callback=_date)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="File ending in .csv or .parquet."
)
@click.option("--store", "store_ids", multiple=True, help="Only these stores (repeatable).")
def export(db_path: str, start: date, end: date, out: Path, store_ids: tuple[str, ...]) -> None:
    """Daily store metrics (one row per store and local day) as CSV or Parquet."""
    from aggregator.export import export_daily

    with _queries(db_path) as q:
        n = export_daily(q, start, end, out, list(store_ids) or None)
    click.echo(f"wrote {n} row(s) to {out}")


@aggregator_group.command("quarantine")
@DB_OPTION
@click.option("--limit", type=click.IntRange(0, 10_000), default=20, show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help='json: only {"reasons": {reason: count}}, over every quarantined payload.',
)
def quarantine(db_path: str, limit: int, fmt: str) -> None:
    """Counts per reason and the latest quarantined payloads."""
    with _queries(db_path) as q:
        counters = q.counters()
        if fmt == "json":
            reasons = {
                k.removeprefix("quarantined."): v for k, v in counters.items() if k.startswith("quarantined.")
            }
            click.echo(json.dumps({"reasons": dict(sorted(reasons.items()))}))
            return
        click.echo(
            json.dumps({k: v for k, v in counters.items() if k.startswith("quarantined")}, sort_keys=True)
        )
        for p in q.quarantine(limit):
            click.echo(f"{p.received_at.isoformat()}  {p.reason_code:<14} {p.topic!r}  {p.reason[:120]}")


@aggregator_group.command("nodes")
@DB_OPTION
@click.option("--store", "store_ids", multiple=True, help="Only these stores (repeatable).")
@click.option("--silent-after-min", default=60, show_default=True, help="List stores silent for longer.")
def nodes(db_path: str, store_ids: tuple[str, ...], silent_after_min: int) -> None:
    """Edge node health (online, last heartbeat, cameras, outbox, sequence gaps) and silent stores."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    with _queries(db_path) as q:
        for n in q.nodes(list(store_ids) or None, now=now):
            cams = ", ".join(
                f"{c.camera_id} {c.fps:.1f}fps {c.inference_ms:.0f}ms {c.quality}" for c in n.cameras
            )
            seen = n.last_seen_at.isoformat(timespec="seconds") if n.last_seen_at else "never"
            click.echo(
                f"{n.store_id}/{n.node_id}  {'online' if n.online else 'OFFLINE'}  last seen {seen}  "
                f"outbox {n.outbox_depth if n.outbox_depth is not None else '-'}  missing seq {n.seq_missing}"
                + (f"  [{cams}]" if cams else "")
                + ("  (stale: nothing heard for two heartbeat periods)" if n.state == "stale" else "")
            )
            if n.outbox_write_failures or n.outbox_held:
                click.echo(
                    f"  outbox: {n.outbox_write_failures} writes failed (disk full?), "
                    f"{n.outbox_held} held in memory"
                )
            for g in n.gaps:
                why = f": {g.reason}" if g.reason else ""
                click.echo(f"  seq {g.lo}..{g.hi} ({g.size}): {g.state}{why}")
        for s in q.silent_stores(now, timedelta(minutes=silent_after_min)):
            when = f"{s.silent_s / 3600:.1f} h" if s.silent_s is not None else "never reported"
            click.echo(f"silent: {s.store_id} ({s.name or '-'}): {when}")


@aggregator_group.group("audit")
def audit_group() -> None:
    """Door-count accuracy audits: record a person's count of a recorded sample, import an installer's walk
    test, list past audits."""


def _instant(value: str, name: str, timezone: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time such as 2026-11-21T14:00", param_hint=name
        ) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone(timezone))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


@audit_group.command("record")
@DB_OPTION
@click.option("--store", "store_id", required=True)
@click.option(
    "--start", required=True, help="Sample start, ISO 8601; without an offset: the store's local time."
)
@click.option("--end", required=True, help="Sample end (exclusive), same form.")
@click.option("--manual-in", type=int, required=True, help="People the auditor saw come in.")
@click.option("--manual-out", type=int, default=None, help="People the auditor saw go out (optional).")
@click.option("--auditor", required=True, help="Who counted.")
@click.option("--note", default="", help="Free text: which recording, anything unusual.")
def audit_record(
    db_path: str,
    store_id: str,
    start: str,
    end: str,
    manual_in: int,
    manual_out: int | None,
    auditor: str,
    note: str,
) -> None:
    """Compare a manual door count of a recorded sample with the system's count of the same window."""
    storage = _storage(db_path)
    try:
        tz = {str(r[0]): str(r[4]) for r in storage.store_rows()}.get(store_id, "UTC")
        t0, t1 = _instant(start, "--start", tz), _instant(end, "--end", tz)
        audit = record_audit(storage, store_id, t0, t1, manual_in, manual_out, auditor=auditor, note=note)
    except AuditError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        storage.close()
    line = (
        f"audit {audit.audit_id} of {store_id}, {t0.isoformat()} to {t1.isoformat()}: "
        f"in: manual {manual_in}, system {audit.system_in} ({_pct(audit.accuracy_in)})"
    )
    if audit.manual_out is not None:
        line += f"; out: manual {audit.manual_out}, system {audit.system_out} ({_pct(audit.accuracy_out)})"
    click.echo(line + f"; accuracy {_pct(audit.accuracy)}")


WALK_TEST_KIND = "showroom.walk-test.v1"
"""The `kind` of `showroom hardware walk-test --out` result files."""


def _walk_test_row(data: object, now: datetime) -> AuditRecord:
    """An `audits` row from a walk test's result: what was walked is the manual count, what the node
    counted is the system's, over the test's own window. `AuditError` names what is wrong in the file."""
    if not isinstance(data, dict) or data.get("kind") != WALK_TEST_KIND:
        raise AuditError(f"not a walk test result (expected kind {WALK_TEST_KIND!r})")
    try:
        store_id = str(data["store_id"])
        start = datetime.fromisoformat(str(data["started_at"]))
        end = datetime.fromisoformat(str(data["ended_at"]))
        counts = {f"{k}_{d}": data[k][d] for k in ("expected", "counted") for d in ("in", "out")}
        installer, source, passed = str(data["installer"]), str(data["source"]), bool(data["passed"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditError(f"walk test result lacks or garbles {exc}") from exc
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise AuditError(f"{name} must be a count >= 0, got {value!r}")
    for name, value in (("started_at", start), ("ended_at", end)):
        if value.tzinfo is None:
            raise AuditError(f"{name} {value.isoformat()} has no time zone")
    if end < start or end > now:
        raise AuditError(f"window {start.isoformat()} to {end.isoformat()} is not a past window")
    note = f"walk test ({source}, node {data.get('node_id', '?')}): {'PASS' if passed else 'FAIL'}"
    return AuditRecord(
        store_id=store_id,
        start_ts=ts_key(start.astimezone(UTC)),
        end_ts=ts_key(max(end, start + timedelta(seconds=1)).astimezone(UTC)),
        manual_in=counts["expected_in"],
        system_in=counts["counted_in"],
        manual_out=counts["expected_out"],
        system_out=counts["counted_out"],
        auditor=installer.strip() or "installer",
        note=note,
        recorded_at=ts_key(now),
    )


@audit_group.command("import")
@click.argument("walk_test_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DB_OPTION
def audit_import(walk_test_file: Path, db_path: str) -> None:
    """Keep a walk test (`showroom hardware walk-test --out FILE`) as an accuracy audit of its store: the
    crossings walked are the manual counts, the node's own crossings the system's."""
    try:
        data = json.loads(walk_test_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {walk_test_file}: {exc}") from exc
    storage = _storage(db_path)
    try:
        row = _walk_test_row(data, datetime.now(UTC))
        store_id = row.store_id
        known = {r.store_id for r in storage.store_rows()} | set(storage.store_ids_with_data())
        if store_id not in known:
            raise AuditError(f"store {store_id!r} is neither registered nor has sent any data")
        with storage.transaction():
            audit_id = storage.insert_audit(row)
        audit = audit_of((audit_id, *row))
    except AuditError as exc:
        raise click.ClickException(f"{walk_test_file}: {exc}") from exc
    finally:
        storage.close()
    click.echo(
        f"audit {audit.audit_id} of {store_id} (walk test): in: walked {audit.manual_in}, counted "
        f"{audit.system_in} ({_pct(audit.accuracy_in)}); out: walked {audit.manual_out}, counted "
        f"{audit.system_out} ({_pct(audit.accuracy_out)}); accuracy {_pct(audit.accuracy)}"
    )


@audit_group.command("list")
@DB_OPTION
@click.option("--store", "store_id", default=None, help="Only this store.")
@click.option("--stale-after-days", type=int, default=STALE_AFTER.days, show_default=True)
def audit_list(db_path: str, store_id: str | None, stale_after_days: int) -> None:
    """Every store's last audit (stale ones first), or every audit of one store."""
    with _queries(db_path) as q:
        if store_id is not None:
            for a in q.audits(store_id):
                out = "-" if a.manual_out is None else f"{a.manual_out}/{a.system_out}"
                click.echo(
                    f"{a.audit_id}\t{a.start.isoformat()}\t{a.end.isoformat()}"
                    f"\tin {a.manual_in}/{a.system_in}\tout {out}\t{_pct(a.accuracy)}\t{a.auditor}\t{a.note}"
                )
            return
        for st in q.audit_status(datetime.now(UTC), timedelta(days=stale_after_days)):
            last = st.last
            state = "STALE" if st.stale else "ok"
            when = (
                "never audited"
                if last is None
                else f"last {last.end.date().isoformat()} {_pct(last.accuracy)}"
            )
            click.echo(f"{st.store_id}\t{state}\t{when}")


@aggregator_group.command("serve")
@DB_OPTION
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8780, show_default=True)
@click.option(
    "--token-env", default="SHOWROOM_API_TOKENS", show_default=True, help="Env var: comma-separated tokens."
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File with one token per line (mode 0600); these tokens read every store.",
)
@click.option("--certfile", type=click.Path(path_type=Path, dir_okay=False), help="TLS certificate (PEM).")
@click.option("--keyfile", type=click.Path(path_type=Path, dir_okay=False), help="TLS key (PEM, mode 0600).")
@click.option(
    "--header-timeout-s",
    type=click.FloatRange(0.1, 600),
    default=ApiLimits.header_timeout_s,
    show_default=True,
    help="Close a connection that has not sent a whole request within this time.",
)
@click.option(
    "--request-timeout-s",
    type=click.FloatRange(0.1, 3600),
    default=ApiLimits.request_timeout_s,
    show_default=True,
    help="Answer 503 to a request that runs longer.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 100_000),
    default=ApiLimits.limit_concurrency,
    show_default=True,
    help="Connections served at once; more are answered 503.",
)
def serve(
    db_path: str,
    host: str,
    port: int,
    token_env: str,
    token_file: Path | None,
    certfile: Path | None,
    keyfile: Path | None,
    header_timeout_s: float,
    request_timeout_s: float,
    max_connections: int,
) -> None:
    """Serve the read-only HTTP JSON API (OpenAPI at /openapi.json). Tokens: --token-file, the
    --token-env variable (both read every store), and those made by `token create` (scoped)."""
    from aggregator.api import ApiServer
    from aggregator.tokens import SecretFileError, TokenBook, read_secret_file

    tokens = [t.strip() for t in os.environ.get(token_env, "").split(",") if t.strip()]
    try:
        if token_file is not None:
            tokens += read_secret_file(token_file)
        if (certfile is None) != (keyfile is None):
            raise click.UsageError("TLS needs both --certfile and --keyfile")
        if keyfile is not None:
            read_secret_file(keyfile)  # refused unless only its owner can read it
        book = TokenBook(tokens)
    except (SecretFileError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    _migrate(db_path)
    limits = ApiLimits(header_timeout_s, request_timeout_s, max_connections)
    try:
        server = ApiServer((host, port), db_path, book, limits=limits, certfile=certfile, keyfile=keyfile)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from exc
    scheme = "https" if server.tls else "http"
    click.echo(f"serving {scheme}://{host}:{server.server_port}/openapi.json")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _migrate(db_path: str) -> None:
    """Bring the database's schema up to date (the API reads it read-only)."""
    _storage(db_path).close()


@aggregator_group.group("token")
def token_group() -> None:
    """API tokens scoped to a brand or a store, kept hashed; each is printed once, when made."""


@token_group.command("create")
@DB_OPTION
@click.option("--brand", default=None, help="The token reads this brand's stores.")
@click.option("--store", "store_id", default=None, help="The token reads this store only.")
@click.option("--note", default="", help="Who or what the token is for (kept beside its hash).")
def token_create(db_path: str, brand: str | None, store_id: str | None, note: str) -> None:
    """Make a token and print it (it is not kept, only its SHA-256: note it down now)."""
    from aggregator.tokens import Scope, create_token

    if (brand is None) == (store_id is None):
        raise click.UsageError("give exactly one of --brand or --store")
    storage = _storage(db_path)
    try:
        token = create_token(storage, Scope(brand=brand, store=store_id), note)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    finally:
        storage.close()
    click.echo(token)
