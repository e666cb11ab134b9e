"""Coverage-guided fuzzing of the event contract parser and the ingest path (atheris, libFuzzer).

    .venv/bin/python bench/fuzz_contract.py [--seconds 600] [--out bench/results/fuzz_contract.json]
    .venv/bin/python bench/fuzz_contract.py --engine hypothesis [--seconds 600]   # where atheris is missing

Every input is a (topic, payload) pair: the first byte picks a topic (a valid one of each kind, or a
malformed one), the rest is the payload. It goes through `Ingestor.ingest_safe` into a real SQLite file,
exactly as a message from the broker: it must end stored, duplicate or quarantined under one of the
contract's named reasons (`edge.events.Reason`), never as an "internal" error and never as an exception.
The seed corpus holds a valid payload of every type and one of each hostile class found by hand. A summary
(inputs tried, how they ended, per reason, new coverage) is written to `--out` every 2 seconds and at the
end; `--seconds 600` is the ten-minute run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    import atheris
except ImportError:  # pragma: no cover - the hypothesis engine is the fallback
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["edge.events", "aggregator.ingest", "aggregator.lru"]):
        from aggregator.ingest import Ingestor, Message
        from edge.events import Reason
else:
    from aggregator.ingest import Ingestor, Message
    from edge.events import Reason

from aggregator.registry import parse_registry
from aggregator.storage import SqliteStorage
from aggregator.synth import VisitPlan, heat_event, stamper_for, visit_events
from edge.events import CameraHealth, Heartbeat, Status, to_json

STORE = "sh-pudong-01"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TOPICS = [
    f"showroom/v1/{STORE}/node-a/events",
    f"showroom/v1/{STORE}/node-a/heat",
    f"showroom/v1/{STORE}/node-a/heartbeat",
    f"showroom/v1/{STORE}/node-a/status",
    f"showroom/v1/{STORE}/node-b/events",
    "showroom/v1/BAD/node-a/events",
    "showroom/v1/x",
    "",
]
REASONS = {r.value for r in Reason}


def seed_corpus() -> list[bytes]:
    """A valid payload of every type, and one of each hostile class, each prefixed by its topic byte."""
    stamper = stamper_for(STORE)
    visit = visit_events(stamper, VisitPlan(NOW, 300.0))
    heat = heat_event(stamper, NOW.replace(second=0) - timedelta(minutes=1), [(0, 0, 5.0), (3, 4, 1.5)], 2)
    cam = CameraHealth(
        camera_id="cam-1", fps=5.0, target_fps=5.0, inference_ms=30.0, dropped_frames=0, reconnects=0,
        quality="excellent",
    )  # fmt: skip
    beat = stamper.stamp(
        Heartbeat, NOW, cameras=[cam], outbox_depth=0, model_id="m", software_version="1", uptime_s=10.0
    )
    status = stamper.stamp(Status, NOW, status="online")
    valid = [(0, to_json(e)) for e in visit] + [(1, to_json(heat)), (2, to_json(beat)), (3, to_json(status))]
    first = json.loads(to_json(visit[0]))
    hostile = [
        (2, to_json(beat).replace(b'"uptime_s":10.0', b'"uptime_s":NaN')),
        (0, json.dumps({**first, "ts": "0001-01-01T00:00:00.000+05:00"}).encode()),
        (0, json.dumps({**first, "ts": "9999-12-31T23:59:59.999Z"}).encode()),
        (0, json.dumps({k: v for k, v in first.items() if k != "schema"}).encode()),
        (0, json.dumps({**first, "seq": 2**63 - 1}).encode()),
        (1, to_json(heat).replace(b"[3,4,1.5]", b"[10000,10000,1.5]")),
        (0, b'{"schema": "showroom.v1", "x": ' + b"[" * 30 + b"]" * 30 + b"}"),
        (5, to_json(visit[0])),
    ]
    return [bytes([t]) + p for t, p in valid + hostile]


class Harness:
    """One ingester on a fresh SQLite file (the registry loaded) and the tally of how inputs ended."""

    def __init__(self, out: Path) -> None:
        self.dir = tempfile.mkdtemp(prefix="fuzz-contract-")
        self.ingestor = Ingestor(SqliteStorage(Path(self.dir) / "agg.sqlite"))
        self.ingestor.load_registry(
            parse_registry(
                {
                    "stores": [
                        {"store_id": STORE, "name": "P", "brand": "aurora", "region": "east",
                         "timezone": "Asia/Shanghai", "floor_size_m": [36, 24]}
                    ]
                }
            )
        )  # fmt: skip
        self.outcomes: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.inputs = 0
        self.started = time.monotonic()
        self.last_write = 0.0
        self.out = out
        self.engine = "atheris" if atheris is not None else "hypothesis"

    def one(self, data: bytes) -> None:
        topic = TOPICS[data[0] % len(TOPICS)] if data else TOPICS[0]
        payload = data[1:]
        result = self.ingestor.ingest_safe([Message(topic, payload, NOW)])
        self.inputs += 1
        ended = result.stored + result.duplicates + result.quarantined
        if ended != 1:
            raise AssertionError(f"input ended {ended} ways: {result}")
        if result.stored:
            self.outcomes["stored"] += 1
        elif result.duplicates:
            self.outcomes["duplicate"] += 1
        else:
            self.outcomes["quarantined"] += 1
        for reason, n in result.reasons.items():
            if reason not in REASONS:
                raise AssertionError(f"quarantined as {reason!r}, not a named reason: {payload[:200]!r}")
            self.reasons[reason] += n
        if time.monotonic() - self.last_write > 2:
            self.write()

    def write(self) -> None:
        self.last_write = time.monotonic()
        summary: dict[str, Any] = {
            "engine": self.engine,
            "seconds": round(time.monotonic() - self.started, 1),
            "inputs": self.inputs,
            "outcomes": dict(self.outcomes),
            "quarantine_reasons": dict(sorted(self.reasons.items())),
            "internal": self.reasons.get("internal", 0),
        }
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def run_atheris(harness: Harness, seconds: int, corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seed_corpus()):
        (corpus / f"seed-{i:02d}").write_bytes(seed)
    args = [sys.argv[0], str(corpus), f"-max_total_time={seconds}", "-max_len=70000", "-print_final_stats=1"]
    atheris.Setup(args, harness.one)
    atheris.Fuzz()


def run_hypothesis(harness: Harness, seconds: int) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seeds = seed_corpus()

    @st.composite
    def inputs(draw: st.DrawFn) -> bytes:
        base = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(0, 4))):
            at = draw(st.integers(0, len(base)))
            cut = draw(st.integers(0, 8))
            base[at : at + cut] = draw(st.binary(max_size=16))
        return bytes(base)

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:

        @settings(max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(data=inputs() | st.binary(max_size=2000))
        def run(data: bytes) -> None:
            harness.one(data)

        run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--engine", choices=["atheris", "hypothesis"], default="atheris")
    parser.add_argument("--out", type=Path, default=Path("bench/results/fuzz_contract.json"))
    parser.add_argument("--corpus", type=Path, default=None, help="libFuzzer corpus folder (kept).")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # a warning per quarantined input would be most of the run's time
    harness = Harness(args.out)
    if args.engine == "atheris" and atheris is None:
        print("atheris is not installed: using --engine hypothesis", file=sys.stderr)
        args.engine = "hypothesis"
    harness.engine = args.engine
    import atexit

    atexit.register(harness.write)
    if args.engine == "atheris":
        run_atheris(harness, args.seconds, args.corpus or Path(harness.dir) / "corpus")
    else:
        run_hypothesis(harness, args.seconds)
        harness.write()
    os._exit(0)


if __name__ == "__main__":
    main()
