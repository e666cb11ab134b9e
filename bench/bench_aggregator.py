"""Aggregator benchmarks: MQTT ingest rate beside a bare paho subscriber, and query latency at scale.

    .venv/bin/python bench/bench_aggregator.py [--events 100000] [--rounds 3] [--stores 500] [--days 365]

1. Ingest: a private Mosquitto; a publisher process sends N contract events (QoS 1, 200 stores' topics)
   while the subscriber's persistent session is offline, so the broker holds a backlog; then the
   subscriber connects and drains it. A bare paho subscriber (MQTT 5, QoS 1, counting only), then at once
   the aggregator (`MqttIngestService`, validating and storing into a fresh SQLite file) on the same N, as
   `showroom aggregator run` runs it (`ProcessWriter`: storing in a child process): `--rounds` such pairs,
   each pair's ratio taken within the pair (a shared virtual machine's speed drifts by tens of per cent
   from minute to minute), the medians reported beside every round. Then once `--writer thread`
   (`InlineWriter`: one process) and k aggregators of that kind in one shared group.
   Rates are N / (first message -> last message) for the bare subscriber and N / (first message -> last
   stored) for the aggregator: both include the broker and paho, neither competes with the publisher.
2. Queries: `aggregator.synth.fill_rollups` writes 500 stores x 365 days of rollups (or `--db` names a
   database kept from an earlier run, migrated first if it is older); each dashboard query runs 40 times on
   random stores and days; p50 and p95 latency are reported. `store_page` is the store page's whole read
   model (one snapshot: funnel, hourly, occupancy, heatmap, cars, health, audit, history state);
   `league_report` HQ's league (change, ranks within brand, outliers, totals), closed and with its last day
   in progress.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from aggregator.ingest import Ingestor, Message
from aggregator.mqtt import MqttIngestService
from aggregator.queries import Queries
from aggregator.registry import parse_registry
from aggregator.storage import SqliteStorage
from aggregator.synth import (
    VisitPlan,
    fill_rollups,
    funnel_day_plans,
    local_midnight_utc,
    stamper_for,
    visit_events,
)
from aggregator.timebuckets import zone
from aggregator.writer import ProcessWriter
from edge.events import subscription, to_json, topic_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        "max_queued_messages 0\nmax_inflight_messages 1000\n",
        encoding="utf-8",
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def make_events(n: int, n_stores: int = 200) -> list[tuple[str, bytes]]:
    """About n contract events from n_stores stores (visits: start, dwell, entry, reception, end)."""
    out: list[tuple[str, bytes]] = []
    stampers = [stamper_for(f"bench-{i:04d}", seed=i) for i in range(n_stores)]
    rng = random.Random(1)
    t0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    i = 0
    while len(out) < n:
        st = stampers[i % n_stores]
        plan = VisitPlan(
            t0 + timedelta(seconds=i),
            rng.uniform(60, 1800),
            browse_car="car-01" if rng.random() < 0.7 else None,
            browse_s=rng.uniform(5, 90),
            enter_car="car-01" if rng.random() < 0.2 else None,
            received=rng.random() < 0.5,
        )
        plan = plan if plan.browse_car else VisitPlan(plan.start_utc, plan.duration_s, received=plan.received)
        out.extend((topic_for(e), to_json(e)) for e in visit_events(st, plan))
        i += 1
    return out[:n]


def _publish(port: int, messages: list[tuple[str, bytes]], ready: Any) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    ready.wait()
    # Message ids are 16-bit: keep fewer than 65,535 unacknowledged, waiting on the oldest.
    pending: deque[mqtt.MQTTMessageInfo] = deque()
    for t, p in messages:
        if len(pending) >= 20_000:
            pending.popleft().wait_for_publish(60)
        pending.append(client.publish(t, p, qos=1))
    for info in pending:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def publish_in_process(port: int, messages: list[tuple[str, bytes]]) -> float:
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_publish, args=(port, messages, ready))
    proc.start()
    time.sleep(0.5)
    t = time.perf_counter()
    ready.set()
    proc.join()
    return len(messages) / (time.perf_counter() - t)


def _connect_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    return props


def drop_session(port: int, client_id: str) -> None:
    """End a client's persistent session on the broker (clean start, no expiry), so that later rounds'
    backlogs are not also queued for it."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port, clean_start=True)
    c.loop_start()
    c.disconnect()
    c.loop_stop()


def bare_rate(port: int, messages: list[tuple[str, bytes]]) -> tuple[float, float, float]:
    """A plain paho subscriber (MQTT 5, QoS 1, persistent session) draining a backlog of `messages`:
    (events/s, the publisher's events/s, CPU seconds of this process per event while draining)."""
    n = len(messages)
    times: list[float] = []
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        times.append(time.perf_counter())
        if len(times) == n:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.connect("127.0.0.1", port, clean_start=True, properties=_connect_props())
    sub.subscribe(subscription(None), qos=1)
    sub.loop_start()
    subscribed.wait(10)
    sub.disconnect()
    sub.loop_stop()
    pub_rate = publish_in_process(port, messages)  # queued by the broker for the offline session
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port, clean_start=False, properties=_connect_props())
    cpu0 = time.process_time()
    sub.loop_start()
    done.wait(600)
    cpu = time.process_time() - cpu0
    sub.disconnect()
    sub.loop_stop()
    drop_session(port, "bench-bare")
    assert len(times) == n, f"bare subscriber got {len(times)} of {n}"
    return n / (times[-1] - times[0]), pub_rate, cpu / n


def _service(port: int, db: Path, writer: str) -> MqttIngestService:
    return MqttIngestService(
        ProcessWriter(db, refresh_interval_s=1.0)
        if writer == "process"
        else Ingestor(SqliteStorage(db), refresh_interval_s=1.0),
        f"mqtt://127.0.0.1:{port}",
        share_group=None,
        client_id="bench-agg",
    )


def _process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def aggregator_rate(
    port: int, messages: list[tuple[str, bytes]], db: Path, writer: str
) -> tuple[float, int, float]:
    """The aggregator draining the same backlog into SQLite: first message received to last one stored
    (events/s, events stored, CPU seconds per event of this process and the writer process if any)."""
    n = len(messages)
    first = _service(port, db, writer)  # subscribes, leaves a persistent session
    thread = threading.Thread(target=first.run, kwargs={"stats_every_s": 3600}, daemon=True)
    thread.start()
    first.subscribed.wait(10)
    first.stop()
    thread.join(30)
    publish_in_process(port, messages)
    service = _service(port, db, writer)
    child = service.writer.pid if isinstance(service.writer, ProcessWriter) else None
    child_cpu0 = _process_cpu_s(child)
    started: list[float] = []
    orig = service._on_message

    def timed(*args: Any) -> None:
        if not started:
            started.append(time.perf_counter())
        orig(*args)

    service._client.on_message = timed
    thread = threading.Thread(target=service.run, kwargs={"stats_every_s": 3600}, daemon=True)
    cpu0 = time.process_time()
    thread.start()
    deadline = time.monotonic() + 900
    while service.totals.stored + service.totals.duplicates + service.totals.quarantined < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"aggregator stored {service.totals.stored} of {n}")
        time.sleep(0.002)
    end = time.perf_counter()
    cpu = time.process_time() - cpu0 + _process_cpu_s(child) - child_cpu0
    service.stop()
    thread.join(30)
    drop_session(port, "bench-agg")
    return n / (end - started[0]), service.totals.stored, cpu / n


def _worker(port: int, db: str, client_id: str, ready: Any, stop: Any) -> None:
    logging.disable(logging.WARNING)
    service = MqttIngestService(
        Ingestor(SqliteStorage(db), refresh_interval_s=1.0),
        f"mqtt://127.0.0.1:{port}",
        share_group="bench-agg",
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


def aggregators_rate(port: int, messages: list[tuple[str, bytes]], db: Path, k: int) -> tuple[float, int]:
    """k aggregator processes in one MQTT 5 shared subscription group, into one SQLite file, draining the
    same backlog: from their (re)connection to the last event stored."""
    ctx = mp.get_context("fork")
    SqliteStorage(db).close()

    def launch() -> tuple[list[Any], Any, list[Any]]:
        stop = ctx.Event()
        readies = [ctx.Event() for _ in range(k)]
        procs = [
            ctx.Process(target=_worker, args=(port, str(db), f"bench-agg-{i}", readies[i], stop))
            for i in range(k)
        ]
        for p in procs:
            p.start()
        return procs, stop, readies

    procs, stop, readies = launch()  # subscribe once, leaving persistent sessions
    for r in readies:
        r.wait(30)
    stop.set()
    for p in procs:
        p.join(30)
    publish_in_process(port, messages)
    t0 = time.perf_counter()
    procs, stop, readies = launch()
    reader = SqliteStorage(db, readonly=True)
    deadline = time.monotonic() + 900
    while True:
        c = reader.counters()
        done = c.get("stored", 0) + c.get("duplicates", 0) + c.get("quarantined", 0)
        if done >= len(messages) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    end = time.perf_counter()
    stop.set()
    for p in procs:
        p.join(60)
    stored = reader.counters().get("stored", 0)
    reader.close()
    return len(messages) / (end - t0), stored


def direct_rate(messages: list[tuple[str, bytes]], db: Path, batch: int = 5000) -> tuple[float, float]:
    """The ingest pipeline alone (validate, store, roll up), no broker: batches as the MQTT writer makes.
    (events/s, CPU seconds per event)."""
    ingestor = Ingestor(SqliteStorage(db), refresh_interval_s=1.0)
    now = datetime.now(UTC)
    msgs = [Message(t, p, now) for t, p in messages]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(0, len(msgs), batch):
        ingestor.ingest(msgs[i : i + batch])
    ingestor.refresh_pending()
    return len(msgs) / (time.perf_counter() - t0), (time.process_time() - cpu0) / len(msgs)


def bench_ingest(n: int, processes: int = 2, rounds: int = 3) -> dict[str, Any]:
    """`rounds` pairs of (bare subscriber, aggregator) on the same backlog, each pair back to back, so a
    pair's ratio compares the two under the same conditions of a shared machine; the medians are the
    result. Then the other variants once."""
    messages = make_events(n)
    pairs: list[tuple[float, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        direct, direct_cpu = direct_rate(messages, Path(tmp) / "direct.sqlite")
        proc, port = start_broker(Path(tmp))
        try:
            pub = 0.0
            for k in range(rounds):
                bare, pub, bare_cpu = bare_rate(port, messages)
                db = Path(tmp) / f"agg-{k}.sqlite"
                agg, stored, agg_cpu = aggregator_rate(port, messages, db, "process")
                assert stored == n, f"stored {stored} of {n}"
                pairs.append((bare, agg, bare_cpu, agg_cpu))
            one, one_stored, one_cpu = aggregator_rate(port, messages, Path(tmp) / "one.sqlite", "thread")
            if processes > 1:
                multi, multi_stored = aggregators_rate(port, messages, Path(tmp) / "multi.sqlite", processes)
            else:
                multi, multi_stored = float("nan"), n
        finally:
            proc.terminate()
            proc.wait(5)
    assert one_stored == n, f"thread writer stored {one_stored} of {n}"
    assert multi_stored == n, f"{processes} processes stored {multi_stored} of {n}"
    bare = statistics.median(p[0] for p in pairs)
    return {
        "direct_per_s": direct,
        "direct_cpu_us": direct_cpu * 1e6,
        "bare_cpu_us": statistics.median(p[2] for p in pairs) * 1e6,
        "aggregator_cpu_us": statistics.median(p[3] for p in pairs) * 1e6,
        "thread_per_s": one,
        "thread_ratio": one / bare,
        "thread_cpu_us": one_cpu * 1e6,
        "processes": processes,
        "multi_per_s": multi,
        "multi_ratio": multi / bare,
        "events": n,
        "bare_per_s": bare,
        "aggregator_per_s": statistics.median(p[1] for p in pairs),
        "ratio": statistics.median(p[1] / p[0] for p in pairs),
        "rounds": [(p[0], p[1], p[1] / p[0]) for p in pairs],
        "publisher_per_s": pub,
    }


def timeit(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]


def _after(day: date) -> datetime:
    """An instant after `day` has ended in every zone: the day is closed."""
    return datetime.combine(day + timedelta(days=2), datetime.min.time(), UTC)


def query_cases(
    q: Queries, warm: Queries, n_stores: int, n_days: int, start: date
) -> dict[str, Callable[[], object]]:
    """The dashboard's and API's queries on random stores and days of a `fill_rollups` history (`q` cold,
    without the period cache; `warm` with it): the same cases on every backend, so figures compare."""
    rng = random.Random(3)

    def store() -> str:
        return f"s{rng.randrange(n_stores):04d}"

    def day() -> date:
        return start + timedelta(days=rng.randrange(30, n_days))

    last = start + timedelta(days=n_days - 1)
    cases: dict[str, Callable[[], object]] = {
        "stores()": lambda: q.stores(),
        "funnel(store, day)": lambda: q.funnel(store(), day()),
        "hourly_traffic(store, day)": lambda: q.hourly_traffic(store(), day()),
        "car_ranking(store, 30 d)": lambda: q.car_ranking(store(), last - timedelta(days=29), last),
        "heatmap(store, 7 d)": lambda: q.heatmap(store(), last - timedelta(days=6), last),
        "heatmap(store, 30 d)": lambda: q.heatmap(store(), last - timedelta(days=29), last),
        "daily_series(store, 365 d)": lambda: q.daily_series(store(), start, last),
        "health(store, 30 d)": lambda: q.health(store(), last - timedelta(days=29), last),
        "league(brand, 30 d)": lambda: q.league(last - timedelta(days=29), last, brand="b1"),
        f"league(all {n_stores}, 7 d)": lambda: q.league(last - timedelta(days=6), last),
        f"league(all {n_stores}, 30 d)": lambda: q.league(last - timedelta(days=29), last),
        f"league(all {n_stores}, 30 d) warm": lambda: warm.league(last - timedelta(days=29), last),
        "store_page(store, day)": lambda: q.store_page(store(), (d := day()), d, d, _after(d)),
        "store_page(store, 30 d)": lambda: q.store_page(
            store(), last, last - timedelta(days=29), last, _after(last)
        ),
        "store_page(store, day) warm": lambda: warm.store_page(store(), last, last, last, _after(last)),
        f"league_report(all {n_stores}, 7 d)": lambda: q.league_report(
            last - timedelta(days=6), last, _after(last)
        ),
        f"league_report(all {n_stores}, 7 d) partial": lambda: q.league_report(
            last - timedelta(days=6),
            last,
            datetime.combine(last, datetime.min.time(), UTC) + timedelta(hours=3),
        ),
        "league_report(brand, 30 d) warm": lambda: warm.league_report(
            last - timedelta(days=29), last, _after(last), brand="b1"
        ),
        "zone_comparison(store, 7 d)": lambda: q.zone_comparison(store(), last - timedelta(days=6), last),
        "nodes()": lambda: q.nodes(),
        "silent_stores()": lambda: q.silent_stores(datetime.now(UTC), timedelta(hours=1)),
    }
    return cases


def bench_queries(db: Path, n_stores: int, n_days: int, reps: int = 40) -> dict[str, tuple[float, float]]:
    start = date(2025, 1, 1)
    if not db.exists():
        t = time.perf_counter()
        s = SqliteStorage(db)
        fill_rollups(s, n_stores=n_stores, start=start, n_days=n_days)
        s.close()
        print(f"generated {n_stores} stores x {n_days} days in {time.perf_counter() - t:.0f} s", flush=True)
    else:  # kept from an earlier run, maybe by an older release: migrate it as the aggregator would
        t = time.perf_counter()
        SqliteStorage(db).close()
        print(f"opened {db} (migrating it if older) in {time.perf_counter() - t:.1f} s", flush=True)
    q = Queries.open(db, cache_periods=False)  # cold: every query reads the database
    warm = Queries.open(db)
    cases = query_cases(q, warm, n_stores, n_days, start)
    return {name: timeit(fn, reps) for name, fn in cases.items()}


def bench_partial_day(visitors_per_day: int = 600, reps: int = 40) -> dict[str, tuple[float, float]]:
    """A day in progress compared up to the same local time, replayed from stored events: one store with
    `visitors_per_day` visits (about 5 events each) today, yesterday and a week ago, read at 18:00 local."""
    store, tz = "bench-01", "Asia/Shanghai"
    today = date(2026, 11, 20)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "partial.sqlite"
        ing = Ingestor(SqliteStorage(db))
        ing.load_registry(
            parse_registry(
                {"stores": [{"store_id": store, "name": "B", "brand": "b", "region": "r", "timezone": tz}]}
            )
        )
        stamper = stamper_for(store)
        for day in (today - timedelta(days=7), today - timedelta(days=1), today):
            plans = funnel_day_plans(
                local_midnight_utc(day, tz),
                visitors_per_day,
                visitors_per_day // 2,
                visitors_per_day // 8,
                visitors_per_day // 3,
                open_hours=(9, 21),
            )
            events = [e for p in plans for e in visit_events(stamper, p)]
            ing.ingest([Message(topic_for(e), to_json(e), datetime.now(UTC)) for e in events])
        ing.storage.close()
        as_of = datetime.combine(today, datetime.min.time(), zone(tz)).astimezone(UTC) + timedelta(hours=18)
        with Queries.open(db) as q:
            cases: dict[str, Callable[[], object]] = {
                f"funnel, day in progress ({visitors_per_day}/day)": lambda: q.funnel(store, today, as_of),
                f"store_page, day in progress ({visitors_per_day}/day)": lambda: q.store_page(
                    store, today, today, today, as_of
                ),
            }
            return {name: timeit(fn, reps) for name, fn in cases.items()}


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--stores", type=int, default=500)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--db", type=Path, default=None, help="Keep the generated query database here.")
    ap.add_argument("--processes", type=int, default=2, help="Aggregators in one shared group.")
    ap.add_argument("--rounds", type=int, default=3, help="Back-to-back bare/aggregator pairs (median).")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-queries", action="store_true")
    args = ap.parse_args()
    if not args.skip_ingest:
        r = bench_ingest(args.events, args.processes, args.rounds)
        for k, (bare, agg, ratio) in enumerate(r["rounds"], start=1):
            print(f"round {k}: bare paho {bare:,.0f}/s, aggregator {agg:,.0f}/s, ratio {ratio:.2f}")
        print(
            f"ingest {r['events']} events, medians of {len(r['rounds'])} rounds: aggregator "
            f"{r['aggregator_per_s']:,.0f}/s, bare paho {r['bare_per_s']:,.0f}/s, ratio {r['ratio']:.2f} "
            f"(publisher {r['publisher_per_s']:,.0f}/s); "
            f"--writer thread {r['thread_per_s']:,.0f}/s, ratio {r['thread_ratio']:.2f}; "
            f"{r['processes']:.0f} aggregators in one shared group {r['multi_per_s']:,.0f}/s, "
            f"ratio {r['multi_ratio']:.2f}; pipeline without broker {r['direct_per_s']:,.0f}/s",
            flush=True,
        )
        print(
            f"CPU per event: aggregator {r['aggregator_cpu_us']:.0f} us (both processes), --writer thread "
            f"{r['thread_cpu_us']:.0f} us, bare paho "
            f"{r['bare_cpu_us']:.0f} us (CPU ratio {r['bare_cpu_us'] / r['aggregator_cpu_us']:.2f}), "
            f"pipeline without broker {r['direct_cpu_us']:.0f} us; load average {os.getloadavg()}",
            flush=True,
        )
    if not args.skip_queries:
        partial = bench_partial_day()
        with tempfile.TemporaryDirectory() as tmp:
            db = args.db or Path(tmp) / "queries.sqlite"
            results = bench_queries(db, args.stores, args.days)
        print(f"query latency, {args.stores} stores x {args.days} days (ms):")
        print(f"| {'query':<38} | {'p50':>8} | {'p95':>8} |")
        for name, (p50, p95) in {**results, **partial}.items():
            print(f"| {name:<38} | {p50:8.1f} | {p95:8.1f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
