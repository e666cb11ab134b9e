"""Load: many simulated nodes (the real outbox and publisher, several per process) into one Mosquitto and
one aggregator (`showroom aggregator run`), at a Saturday-peak rate and then at rising multiples of it.

Saturday peak, per node: about 200 visits an hour through a store's doors at its busiest, four payloads
a visit (start, a dwell or two, end) ~ 0.22 payloads/s, plus a heat minute and two heartbeats a minute:
0.27 payloads/s. Each phase runs the fleet at `multiple` x that rate for its seconds; after the last, the
nodes stop cleanly and drain. Reported per phase: offered and stored payloads per second, delivery lag
(the aggregator's receipt time minus the payload's own time: p50, p99, max), and at the end the payloads
the nodes committed that the aggregator does not have (must be 0) by `event_id`.

    nice -n 10 .venv/bin/python bench/bench_load.py --nodes 500 --per-process 50 --phases 1x60
    nice -n 10 .venv/bin/python bench/bench_load.py --nodes 500 --per-process 50 --phases 1x20,4x20,16x20
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.faultkit import AggregatorProcess, SimNode, node_record  # noqa: E402
from tests.netkit import free_port, wait_port  # noqa: E402

PEAK_VISIT_STEPS_HZ = 0.22
"""Visit payloads per second per node at a Saturday peak (see the module docstring)."""
HEARTBEAT_S = 30.0


def worker(args: argparse.Namespace) -> None:
    """K nodes in this process: run the phases, then stop cleanly (drain, offline)."""
    phases = _phases(args.phases)
    nodes = [
        SimNode(
            Path(args.dir) / f"outbox-{i:04d}.sqlite",
            args.broker,
            store_id=f"store-{i // 2:04d}",
            node_id=f"node-{i % 2}",
            rate_hz=PEAK_VISIT_STEPS_HZ,
            heartbeat_s=HEARTBEAT_S,
            keepalive_s=30,
        )
        for i in range(args.first, args.first + args.count)
    ]
    for node in nodes:
        node.start()
        time.sleep(0.01)  # not all in the same millisecond
    # Every worker's nodes are up before the clock of the phases starts.
    (Path(args.dir) / f"ready-{args.first}").touch()
    while not (Path(args.dir) / "go").exists():
        time.sleep(0.05)
    for multiple, seconds in phases:
        for node in nodes:
            node.rate_hz = PEAK_VISIT_STEPS_HZ * multiple
        time.sleep(seconds)
    threads = [threading.Thread(target=n.stop, kwargs={"drain_timeout_s": 120.0}) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _phases(text: str) -> list[tuple[float, float]]:
    out = []
    for part in text.split(","):
        multiple, _, seconds = part.partition("x")
        out.append((float(multiple), float(seconds)))
    return out


def _window(db: Path, since: str, until: str) -> tuple[int, int, float, float, float]:
    """Over [since, until): payloads made (their own `ts`), payloads stored (receipt), and the lag of the
    stored ones (receipt minus `ts`): p50, p99, max in seconds."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        (made,) = conn.execute(
            "SELECT count(*) FROM events WHERE ts >= ? AND ts < ? AND type != 'status'", (since, until)
        ).fetchone()
        rows = conn.execute(
            "SELECT (julianday(received_at) - julianday(ts)) * 86400.0 FROM events "
            "WHERE received_at >= ? AND received_at < ? AND type != 'status' ORDER BY 1",
            (since, until),
        ).fetchall()
    lags = [float(r[0]) for r in rows]
    if not lags:
        return int(made), 0, float("nan"), float("nan"), float("nan")
    return int(made), len(lags), lags[len(lags) // 2], lags[int(len(lags) * 0.99)], lags[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    w.add_argument("--broker", required=True)
    w.add_argument("--dir", required=True)
    w.add_argument("--first", type=int, required=True)
    w.add_argument("--count", type=int, required=True)
    w.add_argument("--phases", required=True)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--per-process", type=int, default=50)
    parser.add_argument("--phases", default="1x60", help="MULTIPLExSECONDS,... of the Saturday-peak rate")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if args.cmd == "worker":
        worker(args)
        return

    work = Path(tempfile.mkdtemp(prefix="bench_load_"))
    port = free_port()
    conf = work / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    # Like `showroom hardware broker-config` writes it: persistence, bounded in-flight and queues.
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n{user}persistence true\n"
        f"persistence_location {work}/\nmax_inflight_messages 100\nmax_queued_messages 100000\n"
    )
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_port(port)
    url = f"mqtt://127.0.0.1:{port}"
    db = work / "aggregator.db"
    aggregator = AggregatorProcess(db, url).start()
    time.sleep(3.0)  # its session exists before any node sends
    phases = _phases(args.phases)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "worker",
                "--broker",
                url,
                "--dir",
                str(work),
                "--first",
                str(first),
                "--count",
                str(min(args.per_process, args.nodes - first)),
                "--phases",
                args.phases,
            ],
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for first in range(0, args.nodes, args.per_process)
    ]
    while len(list(work.glob("ready-*"))) < len(workers):
        time.sleep(0.1)
    started = time.time()
    (work / "go").touch()
    bounds = [started]
    for _, seconds in phases:
        bounds.append(bounds[-1] + seconds)
    for w_proc in workers:
        w_proc.wait()
    drained = time.time()
    outboxes = sorted(work.glob("outbox-*.sqlite"))
    want: dict[str, set[str]] = {}
    for i, path in enumerate(outboxes):
        want[f"{i}"] = {e for _, e, _, _ in node_record(path)}
    total = sum(len(v) for v in want.values())
    deadline = time.monotonic() + 120
    missing = total
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
            have = {str(r[0]) for r in conn.execute("SELECT event_id FROM events")}
        missing = sum(len(v - have) for v in want.values())
        if missing == 0:
            break
        time.sleep(2.0)
    caught_up = time.time()
    aggregator.stop()
    broker.terminate()
    broker.wait(10)
    print(f"{args.nodes} nodes in {len(workers)} processes, phases {args.phases}; work folder {work}")
    for (multiple, seconds), lo, hi in zip(phases, bounds, bounds[1:], strict=False):
        made, n, p50, p99, mx = _window(db, _utc(lo), _utc(hi))
        asked = args.nodes * (PEAK_VISIT_STEPS_HZ * multiple + 1 / HEARTBEAT_S)
        print(
            f"  {multiple:g}x peak for {seconds:g} s: asked {asked:.0f}/s, made {made / seconds:.0f}/s, "
            f"stored {n / seconds:.0f}/s, lag p50 {p50:.2f} s, p99 {p99:.2f} s, max {mx:.2f} s"
        )
    print(
        f"  committed by the nodes {total}, missing at the aggregator {missing}; nodes drained "
        f"{drained - bounds[-1]:.1f} s after the last phase, aggregator caught up "
        f"{caught_up - drained:.1f} s later"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if missing == 0 else 1)


def _utc(t: float) -> str:
    from datetime import UTC

    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
