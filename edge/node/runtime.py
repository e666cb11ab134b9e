"""The node runtime: cameras -> detector -> analytics -> outbox -> MQTT, with health, 24/7.

Threads: one reader per camera (each with its own bounded, drop-oldest queue), the MQTT publisher, and the
frame loop (the caller's thread) that takes the waiting frame of every camera, runs the detector once on
the whole batch (frames that already carry detections, from the simulator, skip it), feeds the analytics
pipeline, writes its events to the outbox and, every `heartbeat_s`, a heartbeat.

Shutdown (SIGTERM, SIGINT, `--duration`, or every camera ended): stop the cameras, flush the analytics
(open visits end with reason `shutdown`), write a last heartbeat, drain the outbox for a few seconds,
publish the retained `offline` status, close the outbox. What was not acknowledged stays in the outbox and
goes out after the next start.

Restart after a crash: visits the outbox still has open (started, never ended) are closed first with
reason `restart`, at the time of the last payload the node stored before it stopped.

A full disk: when the outbox cannot store a batch, the node keeps counting; the batch is held in memory
and stored with the next batch that fits (`edge.node.outbox_writer`, at most
`RuntimeOptions.max_unstored` payloads). Each failure is counted (`RunSummary.outbox_errors`) and logged;
the heartbeats are held too, so the aggregator shows the node `stale` until its disk has room again; the
heartbeats then delivered say what happened: `outbox_write_failures` (writes refused since start) and
`outbox_held` (payloads in memory when each was made, also in its `outbox_depth`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from edge.analytics.handover import Handover
from edge.config import BrokerConfig, ConfigError, NodeConfig, resolve_path, resolve_state_path
from edge.cues.appearance import Embedder, EmbedTimer, load_embedder, with_appearance
from edge.degradation import CameraDegradation
from edge.events import Envelope, EventStamper, IdSource
from edge.floor.calibration_check import calibration_problems, check_node_calibration
from edge.node.handover_link import HandoverLink
from edge.node.heartbeat import HEARTBEAT_EVERY_S, ModelInfo, NodeVitals, build_heartbeat
from edge.node.mqtt import MqttPublisher
from edge.node.outbox import Outbox, OutboxStats
from edge.node.outbox_writer import OutboxWriter
from edge.node.restart import visits_left_open
from edge.node.sources import (
    Backoff,
    CameraMonitor,
    CameraReader,
    CameraSnapshot,
    FrameQueue,
    HealthRules,
    OpenCvSource,
    open_source,
    source_kind,
)
from edge.sources import CameraFrame, FrameSource
from vision_models.detections import Detections, Detector

log = logging.getLogger(__name__)


class PipelineCounters(Protocol):
    """What is read of the analytics' counters (edge.pipeline.PipelineStats); the runtime logs them whole."""

    @property
    def embedded_boxes(self) -> int:
        """Boxes the re-identification model embedded."""
        ...


class AnalyticsPipeline(Protocol):
    """What the runtime needs of the analytics (edge.pipeline.EdgePipeline): frames in, events out."""

    @property
    def stats(self) -> PipelineCounters: ...

    @property
    def calibration_errors_m(self) -> Mapping[str, float]:
        """Per camera id, the calibration's reprojection error on the floor, metres (for heartbeats)."""
        ...

    def process(
        self,
        ts_utc: datetime,
        detections_by_camera: dict[str, Detections],
        frames_by_camera: dict[str, npt.NDArray[np.uint8]] | None = None,
    ) -> list[Envelope]: ...

    def degradation(self) -> Mapping[str, CameraDegradation]:
        """Per camera id, whether what it sees still makes trustworthy counts (for heartbeats)."""
        ...

    def flush(self, ts_utc: datetime, reason: Literal["shutdown", "lost"] = "shutdown") -> list[Envelope]: ...


PipelineFactory = Callable[[NodeConfig, EventStamper], AnalyticsPipeline]
DetectorFactory = Callable[[NodeConfig], Detector]
EmbedderFactory = Callable[[NodeConfig], Embedder | None]
SourceFactory = Callable[[NodeConfig, Any], FrameSource]


def _handover_of(pipeline: AnalyticsPipeline) -> Handover | None:
    """The hand-over of the node's analytics (a box of a store served by several), if any."""
    analytics = getattr(pipeline, "analytics", None)
    handover = getattr(analytics, "handover", None)
    return handover if isinstance(handover, Handover) else None


def default_pipeline(config: NodeConfig, stamper: EventStamper) -> AnalyticsPipeline:
    """The product's analytics pipeline (tracking, doors, zones, heat)."""
    from edge.pipeline import EdgePipeline  # loaded when a node starts, not by `showroom --help`

    return EdgePipeline(config, stamper)


def default_detector(config: NodeConfig) -> Detector:
    """The configured ONNX detector from the model registry (offline model directory first)."""
    from vision_models.detector import load_detector  # ONNX Runtime: loaded when a node starts

    det = config.detector
    detector: Detector = load_detector(
        det.model,
        input_size_wh=det.input_size_wh,
        score_threshold=det.score_threshold,
        threads=det.threads,
        provider=execution_provider(config),
    )
    return detector


def execution_provider(config: NodeConfig) -> str:
    """The detector's ONNX Runtime execution provider: the box profile's first one that this machine's
    ONNX Runtime offers (a warning names the preferred ones it lacks), the CPU without a profile."""
    if config.box is None:
        return "cpu"
    from vision_models.boxes import choose_provider, load_box

    profile = load_box(config.box.profile)
    choice = choose_provider(profile)
    if choice.fell_back:
        log.warning(
            "box profile %s prefers execution provider(s) %s, not available in this ONNX Runtime; "
            "the detector runs on %s",
            profile.id,
            ", ".join(choice.missing),
            choice.provider,
        )
    return choice.provider


@dataclass(frozen=True)
class RuntimeOptions:
    """How the node runs (the config says what it sees; these say how hard and how often)."""

    heartbeat_s: float = HEARTBEAT_EVERY_S
    queue_frames: int = 2
    max_batch: int = 8
    realtime: bool = True
    health: HealthRules = field(default_factory=HealthRules)
    backoff: Backoff = field(default_factory=Backoff)
    read_timeout_s: float = 5.0
    drain_timeout_s: float = 5.0
    broker_url: str | None = None
    start_utc: datetime | None = None
    stop_when_cameras_end: bool = True
    id_seed: int | None = None
    max_unstored: int = 100_000
    """Payloads held in memory while the outbox cannot store them (a full disk)."""


@dataclass
class RunSummary:
    """What one run did (logged at the end, returned to callers and tests)."""

    batches: int = 0
    frames: int = 0
    inferred_frames: int = 0
    events: int = 0
    heartbeats: int = 0
    pipeline_errors: int = 0
    outbox_errors: int = 0
    unstored_dropped: int = 0
    """Payloads dropped because the outbox could not store them and the memory hold was full."""
    visits_closed_on_restart: int = 0
    detect_s: float = 0.0
    """Wall time inside the detector (pre-processing, network, post-processing)."""
    detect_thread_cpu_s: float = 0.0
    """CPU of the frame loop's own thread inside the detector (its pool threads are not included)."""
    network_s: float = 0.0
    pre_post_s: float = 0.0
    reid_boxes: int = 0
    """Boxes the re-identification model embedded (real cameras; the tracker asks within its budget)."""
    reid_s: float = 0.0
    """Wall time inside the re-identification model."""
    wall_s: float = 0.0
    stop_reason: str = ""
    first_seq: int | None = None
    last_seq: int | None = None
    frames_by_camera: dict[str, int] = field(default_factory=dict)


class NodeRuntime:
    """One edge node. `run()` blocks until stopped; `request_stop()` (or SIGTERM/SIGINT) ends it cleanly.

    Args:
        config: the validated node configuration.
        config_path: the file it came from (relative reference and video paths resolve against it; a
            relative outbox path resolves in the node's state directory, `edge.config.node_state_dir`).
        options: timings and limits, see `RuntimeOptions`.
        pipeline_factory, detector_factory, embedder_factory, source_factory: the parts, replaceable for
            benchmarks; the defaults are the product's own.
    """

    def __init__(
        self,
        config: NodeConfig,
        *,
        config_path: Path | None = None,
        options: RuntimeOptions | None = None,
        pipeline_factory: PipelineFactory = default_pipeline,
        detector_factory: DetectorFactory = default_detector,
        embedder_factory: EmbedderFactory = load_embedder,
        source_factory: SourceFactory | None = None,
    ) -> None:
        self.options = options or RuntimeOptions()
        self.config = self._resolve_paths(config, config_path)
        self.pipeline_factory = pipeline_factory
        self.detector_factory = detector_factory
        self.embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self._embed_timer = EmbedTimer()
        self.source_factory = source_factory or self._open_source
        self._stop = threading.Event()
        self._frames_ready = threading.Event()
        self.stop_reason = ""
        self.monitors = {cam.id: CameraMonitor(cam, self.options.health) for cam in self.config.cameras}
        self.queues = {
            cam.id: FrameQueue(self.options.queue_frames, drop_oldest=self.options.realtime)
            for cam in self.config.cameras
        }
        self.summary = RunSummary()
        self._last_states: dict[str, str] = {}
        self._last_degraded: dict[str, tuple[str, ...]] = {}
        self._rotation = 0
        self.outbox: Outbox | None = None
        self.publisher: MqttPublisher | None = None
        self.writer: OutboxWriter | None = None
        self._handover: HandoverLink | None = None
        """A box of a store served by several: its hand-over link to its neighbours."""

    @staticmethod
    def _resolve_paths(config: NodeConfig, config_path: Path | None) -> NodeConfig:
        # What the node writes goes to the state directory; what it reads is found beside the config.
        outbox = config.outbox.model_copy(update={"path": resolve_state_path(config, config.outbox.path)})
        if config_path is None:
            return config.model_copy(update={"outbox": outbox})
        cameras = []
        for cam in config.cameras:
            update: dict[str, Any] = {}
            if cam.reference_image is not None:
                update["reference_image"] = resolve_path(config_path, cam.reference_image)
            if source_kind(cam.source) == "file":
                update["source"] = str(resolve_path(config_path, Path(cam.source.removeprefix("file:"))))
            cameras.append(cam.model_copy(update=update))
        return config.model_copy(update={"outbox": outbox, "cameras": cameras})

    def _open_source(self, config: NodeConfig, camera: Any) -> FrameSource:
        start = self.options.start_utc
        if source_kind(camera.source) == "sim":
            return open_source(camera, config, start_utc=start, realtime=self.options.realtime)
        return OpenCvSource(
            camera,
            start_utc=start,
            realtime=self.options.realtime,
            read_timeout_s=self.options.read_timeout_s,
        )

    # ------------------------------------------------------------------------------------------------
    # Control
    # ------------------------------------------------------------------------------------------------

    def request_stop(self, reason: str = "requested") -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()
            self._frames_ready.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the node cleanly (main thread only)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self._stop.is_set():
                # A second signal while stopping: leave now. Nothing committed is lost (the outbox is
                # durable); open visits are not flushed.
                log.warning("received %s again; exiting without a clean stop", name)
                os._exit(128 + signum)
            log.info("received %s; shutting down (send it again to exit at once)", name)
            self.request_stop(name)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # ------------------------------------------------------------------------------------------------
    # Checking without running
    # ------------------------------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Everything `run()` would set up, verified without starting: one line per part.

        Raises `ConfigError` (broker credentials, calibration, missing video files), `ModelError` (model
        file missing or not matching its checksum) or `OutboxError` (outbox not writable).
        """
        lines = []
        broker = self.config.broker
        if self.options.broker_url is not None:
            broker = BrokerConfig.model_validate({**broker.model_dump(), "url": self.options.broker_url})
        broker.password()
        lines.append(
            f"broker {broker.url} (user {broker.username or '-'}, TLS {'on' if broker.uses_tls else 'off'})"
        )
        # Each calibration pair judged by a fit of the others, as `showroom edge check-config` does.
        reports = {r.camera_id: r for r in check_node_calibration(self.config)}
        problems = calibration_problems(list(reports.values()))
        if problems:
            raise ConfigError("calibration", problems)
        pipeline = self.pipeline_factory(self.config, EventStamper(self.config.store_id, self.config.node_id))
        errors = dict(pipeline.calibration_errors_m)
        missing = []
        for cam in self.config.cameras:
            kind = source_kind(cam.source)
            if kind == "file" and not Path(cam.source.removeprefix("file:")).is_file():
                missing.append((f"cameras[{cam.id}].source", f"video file {cam.source} does not exist"))
            error = f", calibration error {errors[cam.id]:.3f} m" if cam.id in errors else ""
            held_out = reports[cam.id].held_out_max_m
            if held_out is not None:
                error += f", held-out error max {held_out:.3f} m"
            lines.append(f"camera {cam.id}: {kind} at {cam.fps:g} fps{error}")
            for warning in reports[cam.id].warnings:
                lines.append(f"  warning {reports[cam.id].key_path(warning.key)}: {warning.message}")
        if missing:
            raise ConfigError("cameras", missing)
        if any(source_kind(c.source) != "sim" for c in self.config.cameras):
            detector = self.detector_factory(self.config)
            provider = getattr(detector, "provider", None)  # OnnxDetector's; a bench's stand-in may lack it
            box = f" (box {self.config.box.profile})" if self.config.box is not None else ""
            on = f", provider {provider}{box}" if isinstance(provider, str) else ""
            lines.append(f"detector {detector.model_id} (sha256 {detector.sha256[:16]}...) verified{on}")
            embedder = self.embedder_factory(self.config)
            if embedder is not None:
                lines.append(
                    f"re-identification {embedder.model_id} (sha256 {embedder.sha256[:16]}...) verified"
                )
        with Outbox(self.config.outbox.path, int(self.config.outbox.max_mb * 1024 * 1024)) as outbox:
            lines.append(
                f"outbox {self.config.outbox.path}: {outbox.depth()} unsent, next seq {outbox.next_seq}, "
                f"budget {self.config.outbox.max_mb:g} MB"
            )
        return lines

    # ------------------------------------------------------------------------------------------------
    # The run
    # ------------------------------------------------------------------------------------------------

    def run(self, duration_s: float | None = None) -> RunSummary:
        started = time.monotonic()
        self.outbox = outbox = Outbox(
            self.config.outbox.path,
            int(self.config.outbox.max_mb * 1024 * 1024),
            history_s=self.config.outbox.history_days * 86_400,
        )
        stamper = EventStamper(
            self.config.store_id,
            self.config.node_id,
            IdSource(self.options.id_seed),
            next_seq=outbox.next_seq,
        )
        self.writer = OutboxWriter(outbox, self.options.max_unstored)
        try:
            self._close_open_visits(outbox, stamper)
        except BaseException:
            outbox.close()
            raise
        log.info(
            "node %s/%s starting: %d camera(s), outbox %s (%d unsent, next seq %d)",
            self.config.store_id,
            self.config.node_id,
            len(self.config.cameras),
            self.config.outbox.path,
            outbox.depth(),
            stamper.next_seq,
        )
        try:
            self.publisher = publisher = MqttPublisher(
                self.config.broker,
                outbox,
                store_id=self.config.store_id,
                node_id=self.config.node_id,
                url=self.options.broker_url,
            )
            pipeline = self.pipeline_factory(self.config, stamper)
            needs_detector = any(source_kind(c.source) != "sim" for c in self.config.cameras)
            detector = self.detector_factory(self.config) if needs_detector else None
            self._embedder = self.embedder_factory(self.config) if needs_detector else None
        except BaseException:
            outbox.close()
            raise
        model = ModelInfo("none", None) if detector is None else ModelInfo(detector.model_id, detector.sha256)
        publisher.start()
        readers = [
            CameraReader(
                cam,
                lambda c: self.source_factory(self.config, c),
                self.queues[cam.id],
                self.monitors[cam.id],
                backoff=self.options.backoff,
                on_frame=self._frames_ready.set,
            )
            for cam in self.config.cameras
        ]
        for reader in readers:
            reader.start()
        vitals = NodeVitals()
        self._handover = HandoverLink.open(publisher, _handover_of(pipeline))
        calibration = dict(pipeline.calibration_errors_m)
        last_ts: datetime | None = None
        next_heartbeat = time.monotonic() + min(self.options.heartbeat_s, 5.0)
        deadline = None if duration_s is None else started + duration_s
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    self.request_stop("duration reached")
                    break
                self._frames_ready.wait(0.2)
                self._frames_ready.clear()
                batch = self._take_batch(readers)
                if batch:
                    last_ts = self._process(batch, detector, pipeline, stamper, last_ts)
                if time.monotonic() >= next_heartbeat:
                    self._heartbeat(stamper, model, started, vitals, calibration, pipeline.degradation())
                    next_heartbeat = time.monotonic() + self.options.heartbeat_s
                if (
                    self.options.stop_when_cameras_end
                    and all(r.ended.is_set() for r in readers)
                    and not any(len(q) for q in self.queues.values())
                ):
                    self.request_stop("every camera ended")
        finally:
            self._shutdown(readers, pipeline, stamper, model, started, vitals, calibration, last_ts)
        return self.summary

    def _take_batch(self, readers: Sequence[CameraReader]) -> list[CameraFrame]:
        """At most one frame per camera, gathered so that one time step's frames go in one batch.

        Once a frame is waiting, the others get a short gather window to arrive (live: half a frame
        interval, at most 100 ms; replay: up to 200 ms, so recorded cameras stay in lockstep). Cameras that
        delivered nothing lately (down, reconnecting) are not waited for.
        """
        if not any(len(q) for q in self.queues.values()):
            return []
        fastest = max(cam.fps for cam in self.config.cameras)
        window_s = min(0.5 / fastest, 0.1) if self.options.realtime else 0.2
        deadline = time.monotonic() + window_s
        live = [r.camera.id for r in readers if self._delivering(r)]
        while time.monotonic() < deadline and not self._stop.is_set():
            if all(len(self.queues[cid]) for cid in live):
                break
            time.sleep(0.002)
        batch: list[CameraFrame] = []
        queues = list(self.queues.values())
        # Start each round one camera further, so with more cameras than `max_batch` none is starved.
        self._rotation = (self._rotation + 1) % len(queues)
        for queue in queues[self._rotation :] + queues[: self._rotation]:
            frame = queue.get()
            if frame is not None:
                batch.append(frame)
            if len(batch) >= self.options.max_batch:
                break
        return batch

    def _delivering(self, reader: CameraReader) -> bool:
        """Whether a camera is worth waiting for: delivering frames lately (a down camera is not)."""
        if reader.ended.is_set():
            return False
        monitor = self.monitors[reader.camera.id]
        silent_s = monitor.seconds_since_frame()
        if silent_s is None:
            return monitor.reconnects == 0  # still opening for the first time: worth the short wait
        return silent_s < (2.5 / reader.camera.fps if self.options.realtime else 1.0)

    def _detect(self, batch: Sequence[CameraFrame], detector: Detector | None) -> dict[str, Detections]:
        detections = {f.camera_id: f.detections for f in batch if f.detections is not None}
        to_infer = [f for f in batch if f.detections is None and f.image_bgr is not None]
        if to_infer:
            if detector is None:
                raise RuntimeError("frames need a detector but none is loaded")
            t0, cpu0 = time.perf_counter(), time.thread_time()
            results = detector.detect_batch([f.image_bgr for f in to_infer if f.image_bgr is not None])
            elapsed = time.perf_counter() - t0
            self.summary.detect_s += elapsed
            self.summary.detect_thread_cpu_s += time.thread_time() - cpu0
            timings = detector.last_timings
            self.summary.network_s += timings.infer_ms / 1000.0
            self.summary.pre_post_s += (timings.pre_ms + timings.post_ms) / 1000.0
            self.summary.inferred_frames += len(to_infer)
            per_frame_ms = 1000.0 * elapsed / len(to_infer)
            for frame, result in zip(to_infer, results, strict=True):
                if self._embedder is not None and frame.image_bgr is not None:
                    result = with_appearance(result, frame.image_bgr, self._embedder, self._embed_timer)
                detections[frame.camera_id] = result
                self.monitors[frame.camera_id].record_inference_ms(per_frame_ms)
        return detections

    def _process(
        self,
        batch: list[CameraFrame],
        detector: Detector | None,
        pipeline: AnalyticsPipeline,
        stamper: EventStamper,
        last_ts: datetime | None,
    ) -> datetime:
        ts = max(f.ts_utc for f in batch)
        if last_ts is not None and ts <= last_ts:
            # A late frame of a step already analysed, or cameras whose clocks differ slightly: analytics
            # time must move forward, so it becomes a step of its own just after the last one.
            ts = last_ts + timedelta(milliseconds=1)
        self.summary.batches += 1
        self.summary.frames += len(batch)
        for f in batch:
            self.summary.frames_by_camera[f.camera_id] = self.summary.frames_by_camera.get(f.camera_id, 0) + 1
        try:
            detections = self._detect(batch, detector)
            images = {f.camera_id: f.image_bgr for f in batch if f.image_bgr is not None}
            if self._handover is not None:
                self._handover.before_step()
            events = pipeline.process(ts, detections, images or None)
            if self._handover is not None:
                self._handover.after_step()
        except Exception:
            # One bad frame must not stop the node: count it, log it, go on with the next batch.
            self.summary.pipeline_errors += 1
            log.exception("frame batch at %s failed", ts.isoformat())
            return ts
        self._store(events)
        return ts

    def _close_open_visits(self, outbox: Outbox, stamper: EventStamper) -> None:
        """End the visits a crash left open (reason `restart`), at the last stored payload's time."""
        ended = visits_left_open(outbox, stamper)
        if not ended:
            return
        self._store(list(ended))
        self.summary.visits_closed_on_restart = len(ended)
        log.warning(
            "the node stopped without closing %d visit(s) (a crash?): closed with reason 'restart' at %s",
            len(ended),
            ended[0].ts.isoformat(),
        )

    def _store(self, events: list[Envelope]) -> None:
        if not events or self.writer is None:
            return
        written = self.writer.store(events)
        self.summary.outbox_errors = self.writer.failures
        self.summary.unstored_dropped = self.writer.dropped
        if not written:
            return
        self.summary.events += len(written)
        if self.summary.first_seq is None:
            self.summary.first_seq = written[0].seq
        self.summary.last_seq = written[-1].seq
        if self.publisher is not None:
            self.publisher.notify()

    def _outbox_stats(self) -> OutboxStats:
        """The outbox's stats, its depth counting what a full disk holds in memory."""
        assert self.outbox is not None
        stats = self.outbox.stats()
        held = self.writer.held if self.writer is not None else 0
        return replace(stats, depth=stats.depth + held) if held else stats

    def _heartbeat(
        self,
        stamper: EventStamper,
        model: ModelInfo,
        started: float,
        vitals: NodeVitals,
        calibration: Mapping[str, float],
        degradation: Mapping[str, CameraDegradation],
        cameras: list[CameraSnapshot] | None = None,
    ) -> None:
        if self.outbox is None:
            return
        heartbeat = build_heartbeat(
            stamper,
            datetime.now(UTC),
            cameras=cameras if cameras is not None else [m.snapshot() for m in self.monitors.values()],
            outbox=self._outbox_stats(),
            oldest_unsent_age_s=self.outbox.oldest_unsent_age_s(),
            model=model,
            uptime_s=time.monotonic() - started,
            vitals=vitals,
            calibration_error_m=calibration,
            degradation=degradation,
            handover=None if self._handover is None else self._handover.health(),
            write_failures=self.writer.failures if self.writer is not None else 0,
            held=self.writer.held if self.writer is not None else 0,
        )
        if self._handover is not None:
            self._handover.set_clock_offset(heartbeat.clock_offset_s)
        # While the disk is full this heartbeat is held with the rest, not sent live outside the outbox
        # (`MqttPublisher.publish_control`): it takes a seq like every payload, so a live copy would arrive
        # ahead of the held seqs below it, the aggregator would ask for a replay of them, and the outbox,
        # which has not stored them, would answer "beyond the node's last seq": payloads not lost marked
        # unrecoverable. The node reads `stale` during the outage; the held heartbeats, delivered once the
        # disk has room, carry the refused writes and the held count, so the outage is reported after it.
        self._store([heartbeat])
        self.summary.heartbeats += 1
        for cam in heartbeat.cameras:
            if self._last_states.get(cam.camera_id) != cam.state:
                level = logging.INFO if cam.state == "ok" else logging.WARNING
                detail = f": {cam.detail}" if cam.detail else ""
                log.log(level, "camera %s is %s (%s%s)", cam.camera_id, cam.state, cam.quality, detail)
                self._last_states[cam.camera_id] = cam.state
        for view in degradation.values():
            if self._last_degraded.get(view.camera_id, ()) != view.degraded:
                if view.degraded:
                    log.warning("camera %s: counts degraded: %s", view.camera_id, view.detail)
                elif view.camera_id in self._last_degraded:
                    log.info("camera %s: counts no longer degraded", view.camera_id)
                self._last_degraded[view.camera_id] = view.degraded

    def _shutdown(
        self,
        readers: list[CameraReader],
        pipeline: AnalyticsPipeline,
        stamper: EventStamper,
        model: ModelInfo,
        started: float,
        vitals: NodeVitals,
        calibration: Mapping[str, float],
        last_ts: datetime | None,
    ) -> None:
        log.info("stopping (%s)", self.stop_reason or "error")
        # The last heartbeat tells how the cameras were doing, not that they were just stopped.
        final_cameras = [m.snapshot() for m in self.monitors.values()]
        for reader in readers:
            reader.stop()
        for reader in readers:
            if not reader.join(5.0):
                log.warning("camera %s did not stop within 5 s", reader.camera.id)
        try:
            self._store(pipeline.flush(last_ts or datetime.now(UTC), "shutdown"))
        except Exception:
            self.summary.pipeline_errors += 1
            log.exception("flushing the analytics failed")
        try:
            degradation = pipeline.degradation()
        except Exception:
            degradation = {}
            log.exception("reading the cameras' degradation failed")
        self._heartbeat(stamper, model, started, vitals, calibration, degradation, final_cameras)
        if self._handover is not None:
            self._handover.close()
        if self.publisher is not None:
            self.publisher.stop(drain_timeout_s=self.options.drain_timeout_s)
        if self.outbox is not None:
            left = self.outbox.depth()
            self.outbox.close()
            if left:
                log.warning("%d payload(s) not yet acknowledged; they go out after the next start", left)
        self.summary.wall_s = time.monotonic() - started
        self.summary.stop_reason = self.stop_reason
        self.summary.reid_boxes, self.summary.reid_s = self._embed_timer.boxes, self._embed_timer.seconds
        log.info("node stopped: %s; analytics: %s", self.summary, pipeline.stats)
