"""Node runtime throughput: aggregate frames/s for 1, 2, 4 and 8 cameras, CPU split and memory.

Each camera plays its own 1280x720, 5 fps copy of the PETS09-S2L1 clip (made in a temporary folder at bench
time, never committed; 5 fps as a camera configured for the node would stream), looped, in real time,
through the whole node: decode, resize checks, health,
batched RTMDet-nano detection (the default model at its default input size), floor tracking and analytics,
outbox and MQTT to the local broker. Reported per camera count:

- offered and analysed frames/s (after a warm-up), and the share of frames dropped by the live queues;
- CPU: the node process's CPU seconds per wall second (100% = one core), split into the network's inference
  and everything else. Per-thread CPU comes from /proc/self/task: the network's inference is ONNX Runtime's
  pool threads (the threads that appear while the detector is built) plus the frame loop's own CPU inside
  the detector minus the detector's pre/post-processing (resize, letterbox, decode, single-threaded);
  everything else (video decode, health checks, pre/post-processing, tracking, analytics, outbox, MQTT)
  is the rest;
- CPU seconds per analysed frame, and the frames/s two otherwise idle cores could carry at that cost
  (2 / CPU per frame): the reference machine is shared, so analysed fps alone measures the contention;
- resident memory at the end and the peak.

Usage: python bench/bench_node.py [--cameras 1,2,4,8] [--seconds 20] [--warmup 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import yaml

from edge.config import parse_config
from edge.node.runtime import NodeRuntime, RuntimeOptions, default_detector
from vision_models.registry import MODELS

REPO = Path(__file__).resolve().parents[1]
PETS = REPO.parent / "shared" / "data" / "pets09_s2l1" / "vtest_480x360.avi"
os.environ.setdefault("SHOWROOM_MODEL_DIR", str(REPO.parent / "shared" / "models"))
CLK = os.sysconf("SC_CLK_TCK")


def make_720p_clip(folder: Path, camera_fps: float = 5.0) -> Path:
    """The PETS clip at 1280x720 and at the cameras' 5 fps (as a camera set to 5 fps would stream it)."""
    out = folder / "pets_1280x720.avi"
    cap = cv2.VideoCapture(str(PETS))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    keep_every = max(1, round(fps / camera_fps))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps / keep_every, (1280, 720))
    index = -1
    while True:
        ok, image = cap.read()
        if not ok:
            break
        index += 1
        if index % keep_every:
            continue
        writer.write(cv2.resize(image, (1280, 720), interpolation=cv2.INTER_LINEAR))
    writer.release()
    cap.release()
    return out


def node_config(
    folder: Path, clip: Path, n: int, threads: int = 2, input_size_wh: tuple[int, int] | None = None
) -> Any:
    data = yaml.safe_load((REPO / "examples" / "pets09.yaml").read_text())
    template = data["cameras"][0]
    scale = (1280 / 480, 720 / 360)
    calibration = dict(template["calibration"])
    calibration["image_points_px"] = [[x * scale[0], y * scale[1]] for x, y in calibration["image_points_px"]]
    cameras = []
    for i in range(n):
        copy = folder / f"cam{i}.avi"
        if not copy.exists():
            shutil.copyfile(clip, copy)
        cameras.append(
            {
                "id": f"cam-{i}",
                "source": str(copy),
                "fps": 5,
                "loop": True,
                "resolution_wh": [1280, 720],
                "calibration": calibration,
            }
        )
    data.update(
        {
            "store_id": "bench",
            "node_id": f"node-{n}",
            "cameras": cameras,
            "broker": {"url": "mqtt://127.0.0.1:1883"},
            "outbox": {"path": str(folder / f"outbox-{n}.sqlite"), "max_mb": 100},
            "detector": {"model": "rtmdet-nano-person", "threads": threads, "input_size_wh": input_size_wh},
        }
    )
    return parse_config(data)


def thread_cpu_s() -> dict[int, float]:
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLK
        except (OSError, ValueError, IndexError):
            continue
    return out


class DetectorProbe:
    """Builds the product's detector and notes which OS threads its ONNX Runtime session started."""

    def __init__(self) -> None:
        self.pool_tids: set[int] = set()

    def __call__(self, config: Any) -> Any:
        before = set(thread_cpu_s())
        detector = default_detector(config)
        self.pool_tids = set(thread_cpu_s()) - before
        return detector


def run_one(
    folder: Path,
    clip: Path,
    n: int,
    seconds: float,
    warmup: float,
    threads: int,
    input_size_wh: tuple[int, int] | None = None,
) -> dict[str, Any]:
    config = node_config(folder, clip, n, threads, input_size_wh)
    probe = DetectorProbe()
    runtime = NodeRuntime(
        config, options=RuntimeOptions(heartbeat_s=30.0, max_batch=8), detector_factory=probe
    )
    thread = threading.Thread(target=runtime.run, kwargs={"duration_s": warmup + seconds + 1}, name="node")
    thread.start()
    time.sleep(warmup)
    s0 = dataclasses.replace(runtime.summary)
    d0 = sum(m.dropped_frames for m in runtime.monitors.values())
    cpu0, t0, th0 = time.process_time(), time.monotonic(), thread_cpu_s()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    th1 = thread_cpu_s()
    s1 = dataclasses.replace(runtime.summary)
    drops = sum(m.dropped_frames for m in runtime.monitors.values()) - d0
    rss_now = _rss_mb()
    names = {t.native_id: t.name for t in threading.enumerate()}
    groups: dict[str, float] = {}
    for tid, cpu1 in th1.items():
        name = names.get(tid, "")
        if tid in probe.pool_tids:
            kind = "onnxruntime pool"
        elif name.startswith("camera-"):
            kind = "camera readers"
        elif name == "node":
            kind = "frame loop"
        elif "mqtt" in name or "paho" in name:
            kind = "mqtt"
        elif name == "MainThread":
            kind = "bench"
        else:
            kind = "other native (decoders)"
        groups[kind] = groups.get(kind, 0.0) + cpu1 - th0.get(tid, 0.0)
    thread.join()
    frames = s1.frames - s0.frames
    loop_net_cpu = (s1.detect_thread_cpu_s - s0.detect_thread_cpu_s) - (s1.pre_post_s - s0.pre_post_s)
    network_cpu = groups.get("onnxruntime pool", 0.0) + max(0.0, loop_net_cpu)
    node_cpu = cpu - groups.get("bench", 0.0)
    return {
        "cameras": n,
        "offered_fps": 5.0 * n,
        "fps": frames / wall,
        "drop_pct": 100.0 * drops / max(frames + drops, 1),
        "mean_batch": frames / max(s1.batches - s0.batches, 1),
        "cpu_pct": 100.0 * node_cpu / wall,
        "cpu_ms_per_frame": 1000.0 * node_cpu / max(frames, 1),
        "infer_pct": 100.0 * network_cpu / max(node_cpu, 1e-9),
        "network_ms": 1000.0
        * (s1.network_s - s0.network_s)
        / max(s1.inferred_frames - s0.inferred_frames, 1),
        "threads": {k: 100.0 * v / wall for k, v in sorted(groups.items())},
        "rss_mb": rss_now,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall": wall,
    }


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--threads", type=int, default=2, help="ONNX Runtime intra-op threads (config default 2)"
    )
    parser.add_argument("--input-size", default=None, help="Network input WxH; default: the model's default.")
    args = parser.parse_args()
    w, h = MODELS["rtmdet-nano-person"].input_size_wh
    if args.input_size:
        w, h = (int(v) for v in args.input_size.split("x"))
    size = (w, h)
    counts = [int(c) for c in args.cameras.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        folder = Path(tmp)
        clip = make_720p_clip(folder)
        rows = []
        for n in counts:
            row = run_one(folder, clip, n, args.seconds, args.warmup, args.threads, size)
            rows.append(row)
            print(row, flush=True)
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"detector: rtmdet-nano-person at {size[0]}x{size[1]}, {args.threads} ONNX Runtime thread(s)")
    print(
        "\n| cameras | offered fps | analysed fps | dropped | mean batch | node CPU | of which inference |"
        " everything else | node CPU per frame | fps 2 idle cores could carry | network wall/frame |"
        " RSS end / peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        other = 100.0 - r["infer_pct"]
        print(
            f"| {r['cameras']} | {r['offered_fps']:.0f} | {r['fps']:.1f} | {r['drop_pct']:.0f}% | "
            f"{r['mean_batch']:.1f} | {r['cpu_pct']:.0f}% | {r['infer_pct']:.0f}% | {other:.0f}% | "
            f"{r['cpu_ms_per_frame']:.0f} ms | {2000.0 / r['cpu_ms_per_frame']:.0f} | "
            f"{r['network_ms']:.0f} ms | {r['rss_mb']:.0f} / {r['peak_mb']:.0f} MB |"
        )
    print("\nCPU by thread kind (% of one core):")
    for r in rows:
        parts = ", ".join(f"{k} {v:.0f}%" for k, v in r["threads"].items())
        print(f"- {r['cameras']} camera(s): {parts}")


if __name__ == "__main__":
    main()
