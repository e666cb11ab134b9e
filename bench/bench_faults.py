"""The long versions of the fault matrix (tests/test_fault_matrix.py): a broker down for minutes, and a
broker restarted without persistence after the aggregator was away for a while.

Each ends like the suite's: the aggregator's database against the node's own record (its outbox) by
`event_id`: lost, duplicated, rollups against a recomputation, node state and gap report; and how long
the node and the aggregator took to come back once the broker did.

    nice -n 10 .venv/bin/python bench/bench_faults.py --down-s 600
    nice -n 10 .venv/bin/python bench/bench_faults.py --down-s 60 --volatile-away-s 60
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.edge.node_testkit import Mosquitto  # noqa: E402
from tests.faultkit import InProcessAggregator, SimNode, check_delivery, wait_delivered  # noqa: E402

STORE, NODE = "store-f", "node-1"


def _back(predicate: object, since: float, timeout_s: float = 60.0) -> float:
    while time.monotonic() - since < timeout_s:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - since
        time.sleep(0.02)
    return float("nan")


def broker_down(work: Path, down_s: float, rate_hz: float) -> None:
    broker = Mosquitto(work)
    broker.start()
    aggregator = InProcessAggregator(work / "agg.db", broker.url).start()
    node = SimNode(work / "outbox.sqlite", broker.url, store_id=STORE, node_id=NODE, rate_hz=rate_hz).start()
    time.sleep(5)
    broker.stop()
    time.sleep(down_s)
    depth = node.outbox.depth()
    broker.start()
    since = time.monotonic()
    node_back = _back(lambda: node.publisher.connected, since)
    agg_back = _back(lambda: aggregator.connected, since)
    drained = _back(lambda: node.outbox.depth() == 0, since, 600)
    time.sleep(5)
    wait_delivered(work / "agg.db", work / "outbox.sqlite", STORE, NODE, 300)
    node.stop()
    wait_delivered(work / "agg.db", work / "outbox.sqlite", STORE, NODE, 60)
    aggregator.stop()
    broker.stop()
    result = check_delivery(work / "agg.db", work / "outbox.sqlite", STORE, NODE)
    print(
        f"broker down {down_s:g} s at {rate_hz:g} payloads/s: {depth} held in the outbox; node back "
        f"{node_back:.1f} s, aggregator back {agg_back:.1f} s after the broker, backlog drained in "
        f"{drained:.1f} s\n  {result.line()}"
    )


def volatile_restart(work: Path, away_s: float, rate_hz: float) -> None:
    broker = Mosquitto(work, persistence=False)
    broker.start()
    aggregator = InProcessAggregator(work / "agg.db", broker.url).start()
    node = SimNode(work / "outbox.sqlite", broker.url, store_id=STORE, node_id=NODE, rate_hz=rate_hz).start()
    time.sleep(5)
    aggregator.stop()
    time.sleep(away_s)
    broker.stop()
    broker.start()
    aggregator = InProcessAggregator(work / "agg.db", broker.url).start()
    since = time.monotonic()
    repaired = _back(
        lambda: wait_delivered(work / "agg.db", work / "outbox.sqlite", STORE, NODE, 0.5), since, 300
    )
    stats = node.publisher.stats()
    node.stop()
    wait_delivered(work / "agg.db", work / "outbox.sqlite", STORE, NODE, 60)
    aggregator.stop()
    broker.stop()
    result = check_delivery(work / "agg.db", work / "outbox.sqlite", STORE, NODE)
    print(
        f"aggregator away {away_s:g} s, broker restarted without persistence: repaired by replay in "
        f"{repaired:.1f} s ({stats.replays} requests answered, {stats.replayed} payloads sent again)\n"
        f"  {result.line()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--down-s", type=float, default=600.0)
    parser.add_argument("--volatile-away-s", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=5.0, help="visit payloads per second of the node")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_faults_") as tmp:
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "b").mkdir()
        broker_down(Path(tmp) / "a", args.down_s, args.rate)
        volatile_restart(Path(tmp) / "b", args.volatile_away_s, args.rate)


if __name__ == "__main__":
    main()
