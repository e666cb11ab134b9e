"""The command forms that checks outside the project run, exactly as they run them: the installed `showroom`
command in a subprocess, the shipped registry example, a file with good and bad lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.synth import VisitPlan, stamper_for, visit_events
from edge.events import to_json

REPO = Path(__file__).resolve().parents[2]
SHOWROOM = Path(sys.executable).with_name("showroom")


def showroom(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(SHOWROOM), *args], capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_stores_load_ingest_quarantine_and_token_create(tmp_path: Path) -> None:
    db = tmp_path / "agg.sqlite"
    r = showroom(
        "aggregator", "stores", "load", str(REPO / "examples" / "aggregator" / "stores.yaml"), "--db", str(db)
    )
    assert r.returncode == 0 and r.stdout.startswith("loaded "), r.stderr

    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    events = visit_events(
        stamper_for("sh-pudong-01"), VisitPlan(now, 600.0, browse_car="car-01", browse_s=20.0)
    )
    lines = [to_json(e).decode() for e in events]
    lines += ["{not json", json.dumps({"schema": "showroom.v2"}), "[" * 100 + "]" * 100]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = showroom("aggregator", "ingest", str(path), "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert re.search(rf"\bstored {len(events)}\b", r.stdout), r.stdout
    r = showroom("aggregator", "ingest", str(path), "--db", str(db))  # a replay stores nothing new
    assert "stored 0," in r.stdout and f"duplicates {len(events)}" in r.stdout

    r = showroom("aggregator", "quarantine", "--db", str(db), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"reasons": {"not_json": 2, "schema": 2, "too_deep": 2}}

    r = showroom("aggregator", "token", "create", "--db", str(db), "--store", "sh-pudong-01")
    assert r.returncode == 0 and re.fullmatch(r"srv_[A-Za-z0-9_-]{43}\n", r.stdout), r.stdout
    token = r.stdout.strip()
    for file in tmp_path.glob("agg.sqlite*"):
        assert token.encode() not in file.read_bytes()  # only its hash is kept
    r = showroom("aggregator", "token", "create", "--db", str(db), "--brand", "aurora")
    assert r.returncode == 0 and r.stdout.strip() != token
