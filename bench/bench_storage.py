"""Storage backends measured side by side: MQTT ingest into PostgreSQL with 1, 2 and 4 aggregator processes
beside SQLite with one and a bare paho subscriber, in the same run; query latency on PostgreSQL.

    .venv/bin/python bench/bench_storage.py ingest [--events 30000] [--rounds 2] [--processes 1,2,4]
    .venv/bin/python bench/bench_storage.py queries [--stores 2000] [--days 365] [--keep NAME]
    .venv/bin/python bench/bench_storage.py pipeline [--events 10000] [--batch 1000] [--rounds 3] [--profile]
    .venv/bin/python bench/bench_storage.py rates [--scenario saturday-peak]   # events per store-hour

`--pg` is a server URL whose user may create databases (default postgresql://postgres@127.0.0.1:5432/
postgres); every measurement gets its own fresh database, dropped afterwards (`--keep NAME` keeps the
query database under NAME and reuses it when it exists).

1. Ingest (bench_aggregator.py's method): a private Mosquitto holds a backlog of N contract events from 200
   stores while the subscriber's persistent session is offline; a bare paho subscriber drains it, then
   `showroom aggregator run`'s ingest (a writer process) into SQLite, then the same into PostgreSQL, back
   to back in each round (a shared machine's speed drifts, so ratios are taken within a round). Then k
   aggregator processes (one MQTT 5 shared group, each storing in its own thread) into one PostgreSQL
   database, for each k of `--processes`: from their reconnection to the last event stored; afterwards
   every event must be stored exactly once (count and distinct event ids both N).
   `pipeline`: the ingest pipeline alone (validate, store, roll up; no broker), batches of `--batch`, into a
   fresh SQLite file and a fresh PostgreSQL database, back to back in each round; `--profile` prints where
   PostgreSQL's time went (cProfile, last round).
2. Queries: `aggregator.synth.fill_rollups` writes `--stores` x `--days` of rollups into PostgreSQL (COPY);
   each dashboard query runs 40 times on random stores and days (cold: no period cache); p50 and p95 ms.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import multiprocessing as mp
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_aggregator as ba

from aggregator.ingest import Ingestor, Message
from aggregator.mqtt import MqttIngestService
from aggregator.queries import Queries
from aggregator.storage import open_storage
from aggregator.synth import fill_rollups

PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _url(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


@contextmanager
def pg_database(server: str, keep: str | None = None) -> Iterator[str]:
    """A fresh database on `server` (or the kept one named `keep`), dropped afterwards unless kept."""
    name = keep or f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _url(server, name)
    finally:
        if keep is None:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _worker(port: int, db: str, client_id: str, ready: Any, stop: Any) -> None:
    logging.disable(logging.WARNING)
    service = MqttIngestService(
        Ingestor(open_storage(db), refresh_interval_s=1.0),
        f"mqtt://127.0.0.1:{port}",
        share_group="bench-storage",
        client_id=client_id,
    )
    threading.Thread(target=lambda: (stop.wait(), service.stop()), daemon=True).start()
    service.start()
    service.subscribed.wait(10)
    ready.set()
    service.run_writer(3600)
    service._drain()
    service._client.disconnect()
    service._client.loop_stop()
    service.writer.close()


def processes_rate(port: int, messages: list[tuple[str, bytes]], db: str, k: int) -> tuple[float, int, int]:
    """k aggregator processes in one shared group into one database draining the backlog: (events/s from
    their reconnection to the last event stored, events stored, distinct event ids stored)."""
    ctx = mp.get_context("fork")
    open_storage(db).close()
    tag = uuid.uuid4().hex[:6]

    def launch() -> tuple[list[Any], Any, list[Any]]:
        stop = ctx.Event()
        readies = [ctx.Event() for _ in range(k)]
        procs = [
            ctx.Process(target=_worker, args=(port, db, f"bench-{tag}-{i}", readies[i], stop))
            for i in range(k)
        ]
        for p in procs:
            p.start()
        return procs, stop, readies

    procs, stop, readies = launch()  # subscribe once, leaving persistent sessions
    for r in readies:
        r.wait(60)
    stop.set()
    for p in procs:
        p.join(60)
    ba.publish_in_process(port, messages)
    t0 = time.perf_counter()
    procs, stop, readies = launch()
    reader = open_storage(db, readonly=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        c = reader.counters()
        if c.get("stored", 0) + c.get("duplicates", 0) + c.get("quarantined", 0) >= len(messages):
            break
        time.sleep(0.02)
    end = time.perf_counter()
    stop.set()
    for p in procs:
        p.join(60)
    reader.close()
    for i in range(k):
        ba.drop_session(port, f"bench-{tag}-{i}")
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    assert row is not None
    return len(messages) / (end - t0), int(row[0]), int(row[1])


def bench_ingest(n: int, rounds: int, ks: list[int], server: str) -> None:
    messages = ba.make_events(n)
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = ba.start_broker(Path(tmp))
        try:
            pairs = []
            for k in range(rounds):
                bare, _pub, _cpu = ba.bare_rate(port, messages)
                lite, lite_n, _ = ba.aggregator_rate(port, messages, Path(tmp) / f"r{k}.sqlite", "process")
                with pg_database(server) as db:
                    pg, pg_n, _ = ba.aggregator_rate(port, messages, db, "process")  # type: ignore[arg-type]
                assert lite_n == n and pg_n == n, (lite_n, pg_n)
                pairs.append((bare, lite, pg))
                print(
                    f"round {k + 1}: bare paho {bare:,.0f}/s, SQLite 1 process {lite:,.0f}/s, "
                    f"PostgreSQL 1 process {pg:,.0f}/s (PostgreSQL/SQLite {pg / lite:.2f})",
                    flush=True,
                )
            multi = {}
            for k in ks:
                with pg_database(server) as db:
                    rate, stored, distinct = processes_rate(port, messages, db, k)
                multi[k] = rate
                ok = (
                    "every event once"
                    if stored == distinct == n
                    else f"LOSS/DUPLICATES: {stored}, {distinct}"
                )
                print(
                    f"PostgreSQL, {k} aggregator process(es) in one shared group: {rate:,.0f}/s, {ok}",
                    flush=True,
                )
        finally:
            broker.terminate()
            broker.wait(5)
    bare = statistics.median(p[0] for p in pairs)
    lite = statistics.median(p[1] for p in pairs)
    pg = statistics.median(p[2] for p in pairs)
    ratio = statistics.median(p[2] / p[1] for p in pairs)
    print(
        f"{n} events, medians of {rounds} round(s): bare paho {bare:,.0f}/s, SQLite {lite:,.0f}/s, "
        f"PostgreSQL {pg:,.0f}/s, PostgreSQL/SQLite {ratio:.2f}; "
        + ", ".join(f"{k} processes {r:,.0f}/s" for k, r in multi.items())
        + f"; load average {os.getloadavg()}",
        flush=True,
    )


def _pipeline_rate(messages: list[tuple[str, bytes]], db: str, batch: int, profile: bool = False) -> float:
    """Events/s of `Ingestor.ingest` alone into `db` (a SQLite path or PostgreSQL URL), batch by batch, the
    pending refresh included."""
    storage = open_storage(db)
    ingestor = Ingestor(storage, refresh_interval_s=1.0)
    now = datetime.now(UTC)
    msgs = [Message(t, p, now) for t, p in messages]
    profiler = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for i in range(0, len(msgs), batch):
        ingestor.ingest(msgs[i : i + batch])
    ingestor.refresh_pending()
    if profiler is not None:
        profiler.disable()
    rate = len(msgs) / (time.perf_counter() - t0)
    stored = storage.counters().get("stored", 0)
    storage.close()
    if stored != len(msgs):
        raise RuntimeError(f"{db}: stored {stored} of {len(msgs)}")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return rate


def bench_pipeline(n: int, batch: int, rounds: int, server: str, profile: bool) -> None:
    messages = ba.make_events(n)
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(rounds):
            lite = _pipeline_rate(messages, str(Path(tmp) / f"p{k}.sqlite"), batch)
            with pg_database(server) as db:
                pg = _pipeline_rate(messages, db, batch, profile and k == rounds - 1)
            ratios.append(pg / lite)
            print(
                f"round {k + 1}: pipeline alone, SQLite {lite:,.0f}/s, PostgreSQL {pg:,.0f}/s "
                f"(PostgreSQL/SQLite {pg / lite:.2f}); load average {os.getloadavg()}",
                flush=True,
            )
    print(f"{n} events in batches of {batch}: median PostgreSQL/SQLite {statistics.median(ratios):.2f}")


def bench_queries(server: str, n_stores: int, n_days: int, keep: str | None, reps: int = 40) -> None:
    start = date(2025, 1, 1)
    with pg_database(server, keep) as db:
        storage = open_storage(db)
        if not storage.store_rows():
            t = time.perf_counter()
            fill_rollups(storage, n_stores=n_stores, start=start, n_days=n_days)
            print(
                f"generated {n_stores} stores x {n_days} days in {time.perf_counter() - t:.0f} s", flush=True
            )
        storage.close()
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
        print(f"database size {size[0] if size else '?'}", flush=True)
        q = Queries(open_storage(db, readonly=True), cache_periods=False)
        warm = Queries(open_storage(db, readonly=True))
        cases = ba.query_cases(q, warm, n_stores, n_days, start)
        print(f"query latency on PostgreSQL, {n_stores} stores x {n_days} days (ms):")
        print(f"| {'query':<30} | {'p50':>8} | {'p95':>8} |")
        for name, fn in cases.items():
            p50, p95 = ba.timeit(fn, reps)
            print(f"| {name:<30} | {p50:8.1f} | {p95:8.1f} |", flush=True)
        print(f"load average {os.getloadavg()}")


def event_rates(scenario: str) -> None:
    """Events per store-hour and bytes per event of one simulated peak hour (the node's real pipeline on
    the simulated showroom, as bench/event_streams.py runs it), for the deployment arithmetic."""
    import json
    from collections import Counter

    import event_streams

    t = time.perf_counter()
    lines = event_streams.scenario_stream(scenario, None).splitlines()
    hours = 1.0  # the scenario's arrivals window is one hour (saturday-peak: 14:00-15:00)
    types = Counter(str(json.loads(line)["type"]) for line in lines)
    sizes = [len(line) for line in lines]
    print(f"{scenario}: {len(lines)} events in the hour ({time.perf_counter() - t:.0f} s to simulate)")
    for kind, n in types.most_common():
        kind_bytes = [len(x) for x in lines if json.loads(x)["type"] == kind]
        print(f"  {kind:<14} {n / hours:8.0f}/h  mean {statistics.mean(kind_bytes):6.0f} B")
    # Heartbeats (every 30 s, all day) come from the node's runtime, not the pipeline: one of a 4-camera node.
    from aggregator.synth import stamper_for
    from edge.events import CameraHealth, Heartbeat, to_json

    cams = [
        CameraHealth(
            camera_id=f"cam-{i}",
            fps=4.9,
            target_fps=5,
            inference_ms=31.5,
            dropped_frames=2,
            reconnects=0,
            quality="excellent",
        )
        for i in range(4)
    ]
    hb = stamper_for("sh-pudong-01").stamp(
        Heartbeat,
        datetime(2026, 11, 28, 14, tzinfo=UTC),
        cameras=cams,
        outbox_depth=0,
        oldest_unsent_age_s=None,
        model_id="rtmdet-nano-person",
        model_sha256="0" * 64,
        software_version="0.1.0",
        uptime_s=86_400.0,
        cpu_percent=55.0,
        memory_mb=900.0,
        temperature_c=61.0,
        clock_offset_s=0.01,
        calibration_error_m={f"cam-{i}": 0.08 for i in range(4)},
    )
    print(f"  heartbeat           120/h  {len(to_json(hb)):6d} B (4 cameras; all day, not only open hours)")
    mean_b = statistics.mean(sizes)
    print(f"  all            {len(lines) / hours:8.0f}/h  mean {mean_b:6.0f} B, max {max(sizes)} B")


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["ingest", "pipeline", "queries", "rates"])
    ap.add_argument("--scenario", default="saturday-peak", help="rates: the simulated scenario.")
    ap.add_argument("--pg", default=PG, help="PostgreSQL server URL (a user that may create databases).")
    ap.add_argument("--events", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--processes", default="1,2,4")
    ap.add_argument("--batch", type=int, default=1000, help="pipeline: events per batch.")
    ap.add_argument("--profile", action="store_true", help="pipeline: profile PostgreSQL's last round.")
    ap.add_argument("--stores", type=int, default=2000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--keep", default=None, help="Keep (and reuse) the query database under this name.")
    args = ap.parse_args()
    if args.what == "ingest":
        bench_ingest(args.events, args.rounds, [int(k) for k in args.processes.split(",")], args.pg)
    elif args.what == "pipeline":
        bench_pipeline(args.events, args.batch, args.rounds, args.pg, args.profile)
    elif args.what == "rates":
        event_rates(args.scenario)
    else:
        bench_queries(args.pg, args.stores, args.days, args.keep)


if __name__ == "__main__":
    main()
