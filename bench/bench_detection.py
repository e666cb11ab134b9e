"""Detection benchmark on PETS09-S2L1: accuracy, per-stage speed, whole-process speed, INT8 cost.

    SHOWROOM_MODEL_DIR=../shared/models .venv/bin/python bench/bench_detection.py [--timing-frames 200]

1. Accuracy of every registered model and input size (and the INT8 variants, quantised into a temporary
   cache): AP50 over all 795 frames (detections at score >= 0.05), precision and recall at score >= 0.3,
   against gt.txt scaled from 768x576 to the video's 480x360.
2. Speed: per-frame preprocess / inference / postprocess on 2 threads and on 1, over the first frames of the
   clip decoded beforehand (median per frame, and the best run to show what an idle machine does).
3. Whole process: `showroom models detect` over the clip at 480x384 versus bench/plain_detect.py (decode,
   letterbox, NumPy normalisation, ONNX Runtime on 2 threads), alternated, median wall time of each.
Prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vision_models.detector import OnnxDetector, load_detector
from vision_models.evaluation import AccuracyReport, evaluate, load_mot_ground_truth
from vision_models.registry import resolve
from vision_models.video import read_frames

REPO = Path(__file__).resolve().parent.parent
PETS = REPO.parent / "shared" / "data" / "pets09_s2l1"
VIDEO = PETS / "vtest_480x360.avi"
GT_SCALE = 480 / 768

CONFIGS: list[tuple[str, tuple[int, int] | None]] = [
    ("rtmdet-nano-person", (320, 256)),
    ("rtmdet-nano-person", (480, 384)),
    ("rtmdet-nano-person", (544, 416)),
    ("rtmdet-nano-person", (640, 480)),
    ("yolox-nano", None),
]
INT8_CONFIGS: list[tuple[str, tuple[int, int] | None]] = [
    ("rtmdet-nano-person-int8", (480, 384)),
    ("yolox-nano-int8", None),
]


@dataclass
class Speed:
    pre_ms: float
    infer_ms: float
    post_ms: float
    best_total_ms: float

    @property
    def total_ms(self) -> float:
        return self.pre_ms + self.infer_ms + self.post_ms


def measure_speed(detector: OnnxDetector, frames: list[np.ndarray]) -> Speed:
    for frame in frames[:10]:
        detector.detect(frame)
    pre, infer, post, total = [], [], [], []
    for frame in frames:
        detector.detect(frame)
        t = detector.last_timings
        pre.append(t.pre_ms)
        infer.append(t.infer_ms)
        post.append(t.post_ms)
        total.append(t.total_ms)
    return Speed(statistics.median(pre), statistics.median(infer), statistics.median(post), min(total))


def accuracy(detector: OnnxDetector, frames: list[np.ndarray], truth: dict) -> AccuracyReport:  # type: ignore[type-arg]
    detections = {i: detector.detect(f) for i, f in enumerate(frames, start=1)}
    return evaluate(detections, truth, score_threshold=0.3)


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


Timed = tuple[list[float], list[float]]


def whole_process(runs: int, out_dir: Path) -> tuple[Timed, Timed]:
    """Wall and CPU seconds of each run of our command and of the plain script, alternated."""
    model = resolve("rtmdet-nano-person").path
    showroom = Path(sys.executable).with_name("showroom")
    ours = [
        str(showroom), "--log-level", "warning", "models", "detect", str(VIDEO), "--model",
        "rtmdet-nano-person", "--input-size", "480x384", "--threads", "2", "--no-progress",
        "--out", str(out_dir / "ours.txt"),
    ]  # fmt: skip
    plain = [sys.executable, str(REPO / "bench" / "plain_detect.py"), str(model), str(VIDEO)]
    plain += [str(out_dir / "plain.txt"), "480", "384"]
    ours_t: Timed = ([], [])
    plain_t: Timed = ([], [])
    for _ in range(runs):
        for command, (wall, cpu) in ((ours, ours_t), (plain, plain_t)):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            wall.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return ours_t, plain_t


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timing-frames", type=int, default=200)
    parser.add_argument("--process-runs", type=int, default=3)
    parser.add_argument("--skip-int8", action="store_true")
    parser.add_argument("--skip-process", action="store_true")
    args = parser.parse_args()

    load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    frames = list(read_frames(VIDEO))
    truth = load_mot_ground_truth(PETS / "gt.txt", scale=GT_SCALE)
    timing_frames = frames[: args.timing_frames]
    rows: list[str] = []
    configs = list(CONFIGS)
    with tempfile.TemporaryDirectory(prefix="bench-detection-") as tmp:
        if not args.skip_int8:
            os.environ["SHOWROOM_CACHE_DIR"] = tmp
            from vision_models.quantize import quantize

            for model_id in ("rtmdet-nano-person", "yolox-nano"):
                quantize(model_id, VIDEO, frames=32)
            configs += INT8_CONFIGS
        for model_id, size in configs:
            detector = load_detector(model_id, input_size_wh=size, score_threshold=0.05, threads=2)
            report = accuracy(detector, frames, truth)
            speeds = {}
            for threads in (2, 1):
                timed = load_detector(model_id, input_size_wh=size, score_threshold=0.3, threads=threads)
                speeds[threads] = measure_speed(timed, timing_frames)
            w, h = detector.input_size_wh
            s2, s1 = speeds[2], speeds[1]
            ratio = (s2.pre_ms + s2.post_ms) / s2.infer_ms
            rows.append(
                f"| {model_id} | {w}x{h} | {report.ap50:.3f} | {report.precision:.3f} | {report.recall:.3f} "
                f"| {s2.pre_ms:.2f} / {s2.infer_ms:.2f} / {s2.post_ms:.2f} | {ratio:.1%} | {s2.total_ms:.1f} "
                f"({1000 / s2.total_ms:.0f} fps; best {s2.best_total_ms:.1f}) "
                f"| {s1.total_ms:.1f} ({1000 / s1.total_ms:.0f} fps; best {s1.best_total_ms:.1f}) |"
            )
            print(rows[-1], flush=True)
        process = None if args.skip_process else whole_process(args.process_runs, Path(tmp))

    print(f"\nRun {started}, load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(
        "\n| model | input | AP50 | precision | recall | 2 threads: pre / infer / post ms "
        "| (pre+post)/infer | 2 threads ms/frame | 1 thread ms/frame |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if process is not None:
        (ours, ours_cpu), (plain, plain_cpu) = process
        wall_ratio = statistics.median(ours) / statistics.median(plain)
        cpu_ratio = statistics.median(ours_cpu) / statistics.median(plain_cpu)
        print(
            f"\nWhole process over {len(frames)} frames at 480x384, 2 threads, median of {len(ours)} "
            f"alternated runs: `showroom models detect` {statistics.median(ours):.2f} s wall "
            f"({statistics.median(ours_cpu):.2f} s CPU), plain script {statistics.median(plain):.2f} s wall "
            f"({statistics.median(plain_cpu):.2f} s CPU); ratio ours/plain: wall {wall_ratio:.2f}, "
            f"CPU {cpu_ratio:.2f}"
        )
        print(f"runs (wall s): ours {_fmt(ours)}; plain {_fmt(plain)}")


if __name__ == "__main__":
    main()
