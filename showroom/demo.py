"""`showroom demo`: the whole product on one machine, from a clean clone.

Starts an MQTT broker (the system `mosquitto` on a free port, or the embedded Python broker amqtt where
there is none, unless `--broker` names one), the aggregator on SQLite, the dashboard, and one edge node
per simulated store of the brand (the real node runtime, its cameras `sim://` sources). Before the nodes
go live it backfills a few weeks of history per store through the aggregator's real ingest (simulated
store days, cached for the next run), so day-over-day, week-over-week and health scores have data. Where
the detector model and the PETS09 clip are present, one more node runs a real camera on that video.
Ctrl-C stops everything, nodes first (they end open visits and drain their outboxes), then the
aggregator, the dashboard and the broker.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

import click
import yaml

from edge.config import load_config, state_dir
from edge.events import Envelope, to_json
from edge.sim.behaviour import BehaviourParams
from showroom.sim.history import StoreStyle, cached_store_day, cut_at, derive_day, history_plan, renumber

log = logging.getLogger(__name__)

BRAND = "aurora"
DEMO_PASSWORD = "showroom-demo"


@dataclass(frozen=True)
class DemoStore:
    store_id: str
    name: str
    region: str
    style: StoreStyle
    seed: int


STORES = (
    DemoStore(
        "aurora-sh-01",
        "Shanghai Pudong Flagship",
        "east",
        StoreStyle(1.25, BehaviourParams(p_consult=0.6)),
        1,
    ),
    DemoStore("aurora-bj-02", "Beijing Chaoyang", "north", StoreStyle(1.0, BehaviourParams(p_sit=0.22)), 2),
    DemoStore(
        "aurora-gz-03", "Guangzhou Tianhe", "south", StoreStyle(0.75, BehaviourParams(p_consult=0.3)), 3
    ),
    DemoStore(
        "aurora-cd-04", "Chengdu Jinjiang", "west", StoreStyle(0.9, BehaviourParams(p_skip_cars=0.3)), 4
    ),
    DemoStore("aurora-wh-05", "Wuhan Optics Valley", "central", StoreStyle(0.6), 5),
)


class DemoError(RuntimeError):
    """The demo cannot start; the message says what is missing and what to do."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _showroom_cmd() -> list[str]:
    """The `showroom` command of this installation (the console script beside the interpreter)."""
    script = Path(sys.executable).with_name("showroom")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from showroom.cli import main; main()"]


def _packaged_store_yaml() -> dict[str, Any]:
    from importlib.resources import files

    data = yaml.safe_load(files("showroom.sim").joinpath("sim-store.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@dataclass
class Child:
    """A process the demo started, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Demo:
    """Everything the demo runs; `start()` then `wait()` then `stop()`."""

    workdir: Path
    n_stores: int = 3
    days: int = 14
    port: int = 8501
    broker_url: str | None = None
    video: bool | None = None
    children: list[Child] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.db = self.workdir / "aggregator.sqlite"
        self.users = self.workdir / "users.yaml"
        self.registry = self.workdir / "stores.yaml"
        self.stores = STORES[: self.n_stores]
        self._stop = threading.Event()
        self._history: threading.Thread | None = None

    # -- set-up --------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Fresh database, node configs, registry and users (history cache and logs kept)."""
        (self.workdir / "nodes").mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        for stale in self.workdir.glob("aggregator.sqlite*"):
            stale.unlink()
        for stale in (self.workdir / "nodes").glob("*.outbox.sqlite*"):
            stale.unlink()

    def start_broker(self) -> str:
        if self.broker_url:
            self.lines.append(f"broker     {self.broker_url} (given with --broker)")
            return self.broker_url
        binary = mosquitto_binary()
        if binary is None:
            return self._start_embedded_broker()
        port = free_port()
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n", encoding="utf-8"
        )
        self._spawn("broker", [binary, "-c", str(conf)])
        url = f"mqtt://127.0.0.1:{port}"
        _wait_for_port("127.0.0.1", port, 10.0, "mosquitto")
        self.lines.append(f"broker     {url} (the system mosquitto, {binary}, started by the demo)")
        self.broker_url = url
        return url

    def _start_embedded_broker(self) -> str:
        """No Mosquitto here: the embedded Python broker (amqtt, MQTT 3.1.1) in its own process."""
        port = free_port()
        self._spawn("broker", [sys.executable, "-m", "showroom.broker", "--port", str(port)])
        _wait_for_port("127.0.0.1", port, 30.0, "the embedded MQTT broker (amqtt)")
        url = f"mqtt://127.0.0.1:{port}"
        self.lines.append(f"broker     {url} (embedded amqtt, MQTT 3.1.1: no mosquitto found on PATH)")
        self.broker_url = url
        return url

    def node_configs(self, broker_url: str) -> list[tuple[DemoStore, Path]]:
        out = []
        base = _packaged_store_yaml()
        for store in self.stores:
            data = dict(base)
            data["store_id"] = store.store_id
            data["broker"] = {"url": broker_url}
            data["cameras"] = [dict(c, source=f"sim://demo?seed={store.seed}") for c in base["cameras"]]
            data["outbox"] = {"path": str(self.workdir / "nodes" / f"{store.store_id}.outbox.sqlite")}
            path = self.workdir / "nodes" / f"{store.store_id}.yaml"
            path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            load_config(path)  # fail here, with the key path, rather than in a node's log
            out.append((store, path))
        return out

    def video_config(self, broker_url: str) -> Path | None:
        """A node with one real camera on the PETS09 clip, when the clip and the detector model are here."""
        if self.video is False:
            return None
        root = Path(__file__).resolve().parents[1]
        example = root / "examples" / "pets09.yaml"
        clip = root.parent / "shared" / "data" / "pets09_s2l1" / "vtest_480x360.avi"
        reason = None
        if not example.exists() or not clip.exists():
            reason = f"no PETS09 clip at {clip}"
        else:
            try:
                from vision_models.registry import resolve

                resolve(load_config(example).detector.model)
            except Exception as exc:  # any reason the model cannot be had: say it and go on without
                reason = f"detector model not available ({exc})"
        if reason is not None:
            if self.video:
                raise DemoError(f"--video asked for, but {reason}")
            self.lines.append(f"video      not run: {reason}")
            return None
        data = yaml.safe_load(example.read_text(encoding="utf-8"))
        data["store_id"] = "lab-pets09"
        data["broker"] = {"url": broker_url}
        data["cameras"][0]["source"] = str(clip)
        data["cameras"][0]["loop"] = True
        data["outbox"] = {"path": str(self.workdir / "nodes" / "lab-pets09.outbox.sqlite")}
        path = self.workdir / "nodes" / "lab-pets09.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        load_config(path)
        self.lines.append(
            f"video      store lab-pets09: a real camera (detector on the CPU) on {clip.name}, looped"
        )
        return path

    def write_registry(self, nodes: list[tuple[DemoStore, Path]], video: Path | None) -> None:
        stores: list[dict[str, Any]] = [
            {
                "store_id": s.store_id,
                "name": s.name,
                "brand": BRAND,
                "region": s.region,
                "node_configs": [str(p)],
            }
            for s, p in nodes
        ]
        brands = [{"id": BRAND, "name": "Aurora Motors"}]
        if video is not None:
            brands.append({"id": "lab", "name": "Lab (real footage)"})
            stores.append(
                {
                    "store_id": "lab-pets09",
                    "name": "PETS09 S2.L1 (real video)",
                    "brand": "lab",
                    "region": "lab",
                    "node_configs": [str(video)],
                }
            )
        self.registry.write_text(
            yaml.safe_dump({"brands": brands, "stores": stores}, sort_keys=False), encoding="utf-8"
        )
        from aggregator.ingest import Ingestor
        from aggregator.registry import load_registry
        from aggregator.storage import SqliteStorage

        Ingestor(SqliteStorage(self.db)).load_registry(load_registry(self.registry))

    def write_users(self, video: bool) -> None:
        from dashboard.auth import hash_password

        first = self.stores[0].store_id
        users: list[dict[str, Any]] = [
            {
                "username": "hq",
                "name": "Brand HQ",
                "role": "brand_hq",
                "brands": [BRAND] + (["lab"] if video else []),
            },
            {"username": "manager", "name": "Store manager", "role": "store_manager", "stores": [first]},
            {"username": "installer", "name": "Installer", "role": "installer"},
        ]
        for u in users:
            u["password_hash"] = hash_password(DEMO_PASSWORD)
        self.users.write_text(
            yaml.safe_dump({"users": users}, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        self.lines.append(
            f"log-ins    hq / {DEMO_PASSWORD} (brand HQ), manager / {DEMO_PASSWORD} "
            f"(store manager, {first}), installer / {DEMO_PASSWORD} (node health)"
        )

    # -- processes -----------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        log_path = self.workdir / "logs" / f"{name}.log"
        log_file = log_path.open("ab")
        # Own session: Ctrl-C reaches the demo only, which then stops the children in order.
        process = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env or dict(os.environ),
        )
        child = Child(name, process, log_path, log_file)
        self.children.append(child)
        return child

    def start_aggregator(self, broker_url: str) -> None:
        self._spawn(
            "aggregator",
            [*_showroom_cmd(), "aggregator", "run", "--broker", broker_url, "--db", str(self.db)],
        )

    def start_dashboard(self) -> str:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise DemoError(f"port {self.port} is already in use; pass --port with a free one")
        argv = [*_showroom_cmd(), "dashboard", "--db", str(self.db), "--users", str(self.users)]
        self._spawn("dashboard", [*argv, "--port", str(self.port), "--address", "127.0.0.1"])
        return f"http://127.0.0.1:{self.port}"

    def start_node(self, name: str, config: Path, broker_url: str) -> None:
        self._spawn(
            f"node-{name}", [*_showroom_cmd(), "edge", "run", "--config", str(config), "--broker", broker_url]
        )

    # -- history -------------------------------------------------------------------------------------

    def backfill(self, nodes: list[tuple[DemoStore, Path]], echo: Any = click.echo) -> int:
        """Ingest `days` of history (and today until now) per store; returns the number of events stored.

        Per store, two whole days are simulated (the latest Friday and Saturday, in worker processes, cached
        for the next run); every other day, today until now included, is derived from one of them, thinned
        to its weekday's traffic (`history.derive_day`). Days go in newest first, so today, yesterday and a
        week ago are there early. History is stamped with the live node's id and `seq` from 0, like the
        live node's own numbering, so the aggregator's sequence ranges stay gap-free.
        """
        from aggregator import backfill
        from aggregator.ingest import Ingestor
        from aggregator.storage import SqliteStorage

        ingestor = Ingestor(SqliteStorage(self.db))
        for store, _ in nodes:  # the dashboard says "history loading (n of m days)" until all are in
            backfill.announce(ingestor.storage, store.store_id, self.days + 1)
        cache = self.workdir / "history"
        next_seq = {store.store_id: 0 for store, _ in nodes}
        stored = 0
        now = datetime.now(UTC)
        plans = {}
        for store, path in nodes:
            today = now.astimezone(load_config(path).tz()).date()
            plans[store.store_id] = history_plan(today, self.days, seed=store.seed)
        templates = sorted({(s, p, t) for s, p in nodes for _, t, _ in plans[s.store_id]}, key=str)
        ready: dict[tuple[str, date], list[Envelope]] = {}
        with ProcessPoolExecutor(max_workers=2) as pool:
            futures = {pool.submit(_template_day, p, t, s.style, cache): (s, t) for s, p, t in templates}
            for future in as_completed(futures):
                if self._stop.is_set():
                    pool.shutdown(cancel_futures=True)
                    return stored
                store, t = futures[future]
                ready[(store.store_id, t)] = future.result()
        echo(f"history    {len(templates)} store days simulated; deriving and ingesting the others")
        for index in range(self.days + 1):
            for store, _ in nodes:
                if self._stop.is_set():
                    return stored
                day, template_day, keep = plans[store.store_id][index]
                template = ready[(store.store_id, template_day)]
                seed = zlib.crc32(f"{store.store_id}:{day.isoformat()}".encode())
                events = template
                if day != template_day:
                    events = derive_day(template, (day - template_day).days, keep, seed)
                if index == 0:  # today: what the node would have sent by now
                    events = cut_at(events, now)
                events = renumber(events, next_seq[store.store_id])
                next_seq[store.store_id] += len(events)
                source = f"demo-history:{store.store_id}"
                stored += ingestor.ingest_lines((to_json(e) for e in events), source=source).stored
                backfill.day_loaded(ingestor.storage, store.store_id)
            if index in (1, 7) or index == self.days:
                echo(f"history    {index} day(s) back in ({stored} events)")
        return stored

    # -- life cycle ----------------------------------------------------------------------------------

    def start(self, *, echo: Any = click.echo) -> str:
        """Everything up; returns the dashboard URL once it answers."""
        began = time.monotonic()
        self.prepare()
        broker = self.start_broker()
        nodes = self.node_configs(broker)
        video = self.video_config(broker)
        self.write_registry(nodes, video)
        self.write_users(video is not None)
        self.start_aggregator(broker)
        url = self.start_dashboard()
        _wait_for_http(f"{url}/_stcore/health", 90.0, self._check_children)
        echo(f"dashboard  {url} (up after {time.monotonic() - began:.0f} s)")
        for store, path in nodes:
            self.start_node(store.store_id, path, broker)
        if video is not None:
            self.start_node("lab-pets09", video, broker)
        if self.days > 0:
            self.lines.append(
                f"history    {self.days} days and today per store, going in newest first (see the log lines)"
            )
            self._history = threading.Thread(
                target=self.backfill, args=(nodes, echo), name="history", daemon=True
            )
            self._history.start()
        self.lines.insert(0, f"dashboard  {url}")
        self.lines.append(
            f"stores     {', '.join(s.store_id for s, _ in nodes)}: live nodes on simulated showrooms (sim://demo)"
        )
        self.lines.append(f"logs       {self.workdir / 'logs'}")
        return url

    def _check_children(self) -> None:
        for child in self.children:
            if not child.alive():
                raise DemoError(
                    f"{child.name} exited with code {child.process.returncode}; see {child.log_path}"
                )

    def wait(self, duration_s: float | None = None) -> None:
        """Until Ctrl-C / SIGTERM (or `duration_s`); a child that dies is reported, the rest keep running."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        reported: set[str] = set()
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            for child in self.children:
                if not child.alive() and child.name not in reported:
                    reported.add(child.name)
                    log.error(
                        "%s exited with code %s; see %s", child.name, child.process.returncode, child.log_path
                    )
            self._stop.wait(1.0)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Nodes first (they flush and drain), then aggregator and dashboard, then the broker."""
        self._stop.set()
        if self._history is not None:
            self._history.join(timeout=30)
        groups = [
            [c for c in self.children if c.name.startswith("node-")],
            [c for c in self.children if c.name in ("aggregator", "dashboard")],
            [c for c in self.children if c.name == "broker"],
        ]
        for group in groups:
            for child in group:
                if child.alive():
                    child.process.send_signal(signal.SIGTERM)
            for child in group:
                try:
                    child.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within 15 s; killed", child.name)
                    child.process.kill()
                    child.process.wait(timeout=5)
        for child in self.children:
            if not child.log_file.closed:
                child.log_file.close()


def mosquitto_binary(search_path: str | None = None) -> str | None:
    """The system `mosquitto` on `search_path` (default $PATH), or in the `sbin` beside one of its `bin`
    directories (Debian installs it in /usr/sbin, often missing from a user's PATH); None when there is
    none."""
    dirs = [
        d for d in (os.environ.get("PATH", "") if search_path is None else search_path).split(os.pathsep) if d
    ]
    dirs += [str(Path(d).with_name("sbin")) for d in dirs if Path(d).name == "bin"]
    return shutil.which("mosquitto", path=os.pathsep.join(dirs))


def _template_day(config_path: Path, day: date, style: StoreStyle, cache: Path) -> list[Envelope]:
    """One whole simulated store day, from the cache or the simulator (runs in a worker process)."""
    return cached_store_day(load_config(config_path), day, style, cache)


def _wait_for_port(host: str, port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise DemoError(f"{what} did not open {host}:{port} within {timeout_s:.0f} s")


def _wait_for_http(url: str, timeout_s: float, check: Any) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise DemoError(f"{url} did not answer within {timeout_s:.0f} s")


@click.command("demo")
@click.option(
    "--broker", "broker_url", help="Use this MQTT broker (mqtt://host:port) instead of starting one."
)
@click.option("--stores", "n_stores", type=click.IntRange(1, len(STORES)), default=3, show_default=True)
@click.option(
    "--days",
    type=click.IntRange(0, 60),
    default=14,
    show_default=True,
    help="Days of history (0: none at all).",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8501, show_default=True, help="Dashboard port."
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="State and logs (default: demo/ in the state directory, $SHOWROOM_STATE_DIR or "
    "~/.local/share/showroom).",
)
@click.option(
    "--video/--no-video", default=None, help="One real camera on the PETS09 clip (default: if present)."
)
@click.option("--duration", type=click.FloatRange(min=0), help="Stop by itself after S seconds.")
def demo(
    broker_url: str | None,
    n_stores: int,
    days: int,
    port: int,
    workdir: Path | None,
    video: bool | None,
    duration: float | None,
) -> None:
    """The whole product on this machine: broker, simulated stores' nodes, aggregator, dashboard."""
    runner = Demo(
        workdir or state_dir() / "demo",
        n_stores=n_stores,
        days=days,
        port=port,
        broker_url=broker_url,
        video=video,
    )

    def _on_signal(_sig: int, _frame: FrameType | None) -> None:
        runner.request_stop()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        runner.start()
        click.echo("\nShowroom Vision demo is running")
        for line in runner.lines:
            click.echo(f"  {line}")
        click.echo("Press Ctrl-C to stop.", nl=True)
        runner.wait(duration)
    except DemoError as exc:
        click.echo(f"demo: {exc}", err=True)
        runner.stop()
        sys.exit(1)
    finally:
        if runner.children and any(c.alive() for c in runner.children):
            click.echo("stopping ...")
        runner.stop()
    click.echo("demo stopped")


__all__ = ["STORES", "Demo", "DemoError", "demo", "free_port"]
