"""Memory of `showroom aggregator run` under a flood of unique invalid topics, through a real broker.

    .venv/bin/python bench/bench_hostile_topics.py [--rounds 3] [--per-round 10000]

A private Mosquitto; `showroom aggregator run --writer process` subscribed to it; a publisher sends
`--per-round` payloads, each on a topic never seen before (`showroom/v1/BAD-<n>/x/events`, so every one is
quarantined as `bad_topic`), QoS 1. After each round, once the quarantine counter has caught up, the resident
memory (VmRSS) of the receiving process and of its writer process is read, beside the database's size (the
writer's SQLite page cache, up to 64 MiB, grows with the file it reads: the quarantine rows). Growth after
the first round (caches filled to their bounds) is what a flood costs for good.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.synth import VisitPlan, stamper_for, visit_events
from bench.bench_aggregator import start_broker
from edge.events import to_json

SHOWROOM = Path(sys.executable).with_name("showroom")
# A valid payload, so the topic is what is refused (and goes through the topic cache).
PAYLOAD = to_json(visit_events(stamper_for("sh-pudong-01"), VisitPlan(datetime.now(UTC), 60.0))[0])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def quarantined(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT value FROM counters WHERE name = 'quarantined.bad_topic'").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hostile-topics-"))
    broker, port = start_broker(work)
    db = work / "agg.sqlite"
    agg = subprocess.Popen(
        [str(SHOWROOM), "aggregator", "run", "--broker", f"mqtt://127.0.0.1:{port}", "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=(work / "agg.log").open("wb"),
    )
    try:
        time.sleep(5)  # subscribed
        writer = children(agg.pid)
        print(f"aggregator pid {agg.pid}, writer {writer}")
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hostile", protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        base = (rss_kib(agg.pid), sum(rss_kib(p) for p in writer))
        print(f"start: receiver {base[0] / 1024:.1f} MiB, writer {base[1] / 1024:.1f} MiB")
        sent = 0
        rows = []
        for _ in range(args.rounds):
            t0 = time.monotonic()
            for i in range(args.per_round):
                info = pub.publish(f"showroom/v1/BAD-{sent + i}/x/events", PAYLOAD, qos=1)
                if i % 1000 == 999:
                    info.wait_for_publish(30)
            sent += args.per_round
            while quarantined(db) < sent:
                if time.monotonic() - t0 > 300:
                    raise RuntimeError(f"only {quarantined(db)} of {sent} quarantined after 300 s")
                time.sleep(0.5)
            took = time.monotonic() - t0
            now = (rss_kib(agg.pid), sum(rss_kib(p) for p in writer))
            rows.append((sent, now, took))
            size = sum(p.stat().st_size for p in work.glob("agg.sqlite*"))
            print(
                f"after {sent:,} unique bad topics ({took:.1f} s): receiver {now[0] / 1024:.1f} MiB, "
                f"writer {now[1] / 1024:.1f} MiB; database {size / 2**20:.1f} MiB"
            )
        pub.loop_stop()
        first, last = rows[0][1], rows[-1][1]
        print(
            f"growth after the first round ({rows[-1][0] - rows[0][0]:,} more topics): receiver "
            f"{(last[0] - first[0]) / 1024:+.1f} MiB, writer {(last[1] - first[1]) / 1024:+.1f} MiB"
        )
    finally:
        agg.terminate()
        agg.wait(30)
        broker.terminate()
        broker.wait(10)


if __name__ == "__main__":
    main()
