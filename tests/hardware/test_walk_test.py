"""`showroom hardware walk-test` on the PETS09 clip (the node's real detector, tracker and door counter), its
pass and fail paths, the live path on the node's own frame sources, and the result kept as an accuracy
audit of the store by `showroom aggregator audit import`."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from broker_kit import REPO, SHOWROOM

PETS_VIDEO = REPO.parent / "shared" / "data" / "pets09_s2l1" / "vtest_480x360.avi"
PETS_CONFIG = REPO / "examples" / "pets09.yaml"
FRAMES = "200"

REGISTRY = """
brands:
  - id: pets
    name: PETS test brand
stores:
  - store_id: pets09
    name: PETS 2009 S2.L1
    brand: pets
    region: test
    timezone: Europe/London
    floor_size_m: [50, 50]
"""


def showroom(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [*SHOWROOM, "--log-level", "warning", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    print(proc.stdout, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def walk_test(out: Path, expect_in: int, expect_out: int, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = showroom(
        "hardware", "walk-test", "--config", str(PETS_CONFIG), "--expect-in", str(expect_in),
        "--expect-out", str(expect_out), "--out", str(out), *extra,
    )  # fmt: skip
    return proc.returncode, json.loads(out.read_text())


@pytest.fixture(scope="module")
def node_counts() -> dict[str, int]:
    """What the node counts on the clip's first frames, from `showroom edge track` (the offline tool)."""
    proc = showroom("edge", "track", str(PETS_VIDEO), "--config", str(PETS_CONFIG), "--max-frames", FRAMES)
    assert proc.returncode == 0
    found = dict(re.findall(r"centre-line (in|out): (\d+)", proc.stdout))
    return {d: int(found.get(d, 0)) for d in ("in", "out")}


def test_walk_test_on_a_clip_passes_when_the_walk_matches_and_fails_when_not(
    node_counts: dict[str, int], tmp_path: Path
) -> None:
    assert node_counts["in"] + node_counts["out"] > 0, "the clip's first frames must cross the door line"
    clip = ("--video", str(PETS_VIDEO), "--max-frames", FRAMES)

    rc, good = walk_test(tmp_path / "good.json", node_counts["in"], node_counts["out"], *clip)
    assert rc == 0
    assert good["passed"] and good["counted"] == node_counts and good["accuracy"] == {"in": 1.0, "out": 1.0}
    assert good["frames"] == int(FRAMES) and good["store_id"] == "pets09" and good["node_id"] == "view-1"

    wrong = {"in": node_counts["in"] + 5, "out": node_counts["out"]}
    rc, bad = walk_test(tmp_path / "bad.json", wrong["in"], wrong["out"], *clip)
    assert rc == 1
    assert not bad["passed"] and bad["counted"] == node_counts and bad["expected"] == wrong
    assert bad["accuracy"]["in"] == round(1 - 5 / wrong["in"], 4) < 0.95
    assert bad["accuracy"]["out"] == 1.0

    # Kept as accuracy audits of the store and listed with its others.
    db = tmp_path / "agg.sqlite"
    registry = tmp_path / "stores.yaml"
    registry.write_text(REGISTRY)
    assert showroom("aggregator", "stores", "load", str(registry), "--db", str(db)).returncode == 0
    for result in ("good.json", "bad.json"):
        proc = showroom("aggregator", "audit", "import", str(tmp_path / result), "--db", str(db))
        assert proc.returncode == 0 and "walk test" in proc.stdout
    listed = showroom("aggregator", "audit", "list", "--db", str(db), "--store", "pets09").stdout.splitlines()
    assert len(listed) == 2
    assert f"in {node_counts['in']}/{node_counts['in']}" in listed[0] or f"in {wrong['in']}/" in listed[0]
    assert any("walk test" in line and "PASS" in line for line in listed)
    assert any("walk test" in line and "FAIL" in line for line in listed)
    overview = showroom("aggregator", "audit", "list", "--db", str(db)).stdout
    assert re.search(r"^pets09\tok\tlast ", overview, re.MULTILINE)


def test_walk_test_live_runs_the_node_cameras_for_the_given_minutes(tmp_path: Path) -> None:
    rc, result = walk_test(tmp_path / "live.json", 0, 0, "--minutes", "0.1")
    assert result["source"].startswith("live")
    # About 6 s of the camera (a video file read in real time at 7 fps).
    assert 25 <= result["frames"] <= 50
    assert rc == (0 if result["passed"] else 1)


def test_bad_input_is_named_without_a_traceback(tmp_path: Path) -> None:
    expect = ("--expect-in", "1", "--expect-out", "1")
    proc = showroom("hardware", "walk-test", "--config", str(PETS_CONFIG), *expect)
    assert proc.returncode == 2 and "--minutes" in proc.stderr

    nowhere = str(tmp_path / "none.yaml")
    missing = showroom("hardware", "walk-test", "--config", nowhere, *expect, "--minutes", "1")
    assert missing.returncode == 2 and "cannot read" in missing.stderr

    db = tmp_path / "agg.sqlite"
    not_a_result = tmp_path / "x.json"
    not_a_result.write_text('{"kind": "something else"}')
    proc = showroom("aggregator", "audit", "import", str(not_a_result), "--db", str(db))
    assert proc.returncode == 1 and "not a walk test result" in proc.stderr

    unknown_store = tmp_path / "y.json"
    unknown_store.write_text(
        json.dumps(
            {
                "kind": "showroom.walk-test.v1", "store_id": "nowhere", "node_id": "n", "source": "live",
                "started_at": "2026-01-01T10:00:00+00:00", "ended_at": "2026-01-01T10:05:00+00:00",
                "expected": {"in": 10, "out": 10}, "counted": {"in": 10, "out": 9}, "passed": False,
                "installer": "ana",
            }
        )
    )  # fmt: skip
    proc = showroom("aggregator", "audit", "import", str(unknown_store), "--db", str(db))
    assert proc.returncode == 1 and "'nowhere' is neither registered" in proc.stderr
