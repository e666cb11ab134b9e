"""Who the pipeline's visits and staff flags really follow on a simulated scenario (a diagnosis, not a score).

`bench_sim.py` compares counts with the truth. Counts can be right for wrong reasons (a false reception on one
visitor cancelling a missed one on another), so this runs the same pipeline and, every half second, looks up
the true person under each track (the nearest one within 0.7 m, not sitting in a car):

- staff flags: each time a track is newly flagged staff, the true role of the person under it;
- visits on staff: visit-seconds spent on a track that follows a true staff member;
- receptions: each `reception` event whose visit followed, over the streak, a visitor the truth has received
  in an overlapping interval (right) or not (wrong).

    .venv/bin/python bench/diag_sim_identity.py [--seed N] [--scenario NAME] [--no-reid]
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from datetime import timedelta

import numpy as np

from edge.events import EventStamper, IdSource, Reception
from edge.pipeline import EdgePipeline
from edge.sim.scenarios import get_scenario
from edge.sim.source import SimulatedNode
from showroom.sim.evaluate import compare, default_config, measure
from showroom.sim.truth import compute_truth

SAMPLE_S = 0.5
MATCH_M = 0.7


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenario", default="saturday-peak")
    parser.add_argument("--no-reid", action="store_true")
    args = parser.parse_args()
    config = default_config()
    if args.no_reid:
        config = config.model_copy(update={"tracker": config.tracker.model_copy(update={"reid": None})})
    node = SimulatedNode(config, get_scenario(args.scenario), args.seed)
    end_s = node.sim.finish()
    truth = compute_truth(node.sim, config.thresholds)
    people = node.sim.people()
    role = {p.pid: p.role for p in people}
    pipeline = EdgePipeline(config, EventStamper(config.store_id, config.node_id, IdSource(args.seed)))
    analytics = pipeline.analytics
    fps = max(cam.fps for cam in config.cameras)

    def person_at(t_s: float) -> tuple[np.ndarray, np.ndarray]:
        s = node.sim.samples(t_s, 1, 1.0)
        keep = ~s.seated
        return s.pid[keep], s.xy_m[keep]

    def who(pids: np.ndarray, xy: np.ndarray, at: tuple[float, float]) -> int | None:
        if not len(pids):
            return None
        d = np.hypot(xy[:, 0] - at[0], xy[:, 1] - at[1])
        k = int(np.argmin(d))
        return int(pids[k]) if d[k] <= MATCH_M else None

    events = []
    flags: Counter[str] = Counter()
    on_staff_s: Counter[str] = Counter()
    followed: dict[str, list[tuple[float, int | None]]] = defaultdict(list)
    next_sample = 0.0
    for t_s, detections in node.batches(fps, end_s):
        staff_before = {t.track_id for t in pipeline.tracks if analytics.is_staff(t.track_id)}
        events += pipeline.process(node.start_utc + timedelta(seconds=t_s), detections)
        newly = [
            t for t in pipeline.tracks if analytics.is_staff(t.track_id) and t.track_id not in staff_before
        ]
        if t_s < next_sample and not newly:
            continue
        pids, xy = person_at(t_s)
        for track in newly:
            if track.observed:
                pid = who(pids, xy, track.xy_m)
                flags[role[pid] if pid is not None else "nobody within 0.7 m"] += 1
        if t_s < next_sample:
            continue
        next_sample += SAMPLE_S
        for track in pipeline.tracks:
            visitor_id = analytics.visitor_of(track.track_id)
            if visitor_id is None or not track.observed:
                continue
            pid = who(pids, xy, track.xy_m)
            followed[visitor_id].append((t_s, pid))
            if pid is not None and role[pid] == "staff":
                on_staff_s[visitor_id] += SAMPLE_S
    events += pipeline.flush(node.start_utc + timedelta(seconds=end_s), "shutdown")

    received = {v.pid: v.reception for v in truth.visits if v.reception is not None}
    verdicts: Counter[str] = Counter()
    for event in events:
        if not isinstance(event, Reception):
            continue
        a = (event.started_at - node.start_utc).total_seconds()
        b = a + event.duration_s
        seen = followed.get(event.visitor_id, [])
        votes = Counter(pid for t, pid in seen if a <= t <= b and pid is not None)
        pid = votes.most_common(1)[0][0] if votes else None
        streak = received.get(pid) if pid is not None else None
        if streak is not None and streak.start_s < b and streak.end_s > a:
            verdicts["right"] += 1
        elif pid is not None and role[pid] == "staff":
            verdicts["wrong: the visit was on a staff member"] += 1
        elif pid is not None:
            verdicts["wrong: a visitor the truth has not received then"] += 1
        else:
            verdicts["wrong: nobody under the visit's track"] += 1

    report = compare(truth, measure(events, config.thresholds), config)
    print(f"scenario {args.scenario}, seed {args.seed}, re-identification {'off' if args.no_reid else 'on'}")
    for name in ("visitors", "car_entrants", "reception"):
        m = report[name]
        print(f"  {name}: truth {m['truth']:g}, measured {m['measured']:g}")
    print(f"  staff flags by the true role under the track: {dict(flags)}")
    riding = sum(1 for s in on_staff_s.values() if s >= 10)
    total_s = sum(on_staff_s.values())
    print(f"  visits on a staff member's track for 10 s or more: {riding}, {total_s:.0f} s in all")
    print(f"  reception events: {sum(verdicts.values())}, {dict(verdicts)}")


if __name__ == "__main__":
    main()
