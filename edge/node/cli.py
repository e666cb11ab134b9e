"""`showroom edge run`: the node appliance's command (registered on the `edge` group)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from edge.config import ConfigError, load_config

log = logging.getLogger(__name__)


@click.command("run")
@click.option(
    "--config", "config_file", required=True, type=click.Path(path_type=Path), help="The node's YAML file."
)
@click.option(
    "--broker", "broker_url", help="Broker URL (mqtt://host:port, mqtts://...); overrides the config."
)
@click.option("--duration", "duration_s", type=click.FloatRange(min=0, min_open=True), help="Stop after S s.")
@click.option(
    "--heartbeat-s",
    type=click.FloatRange(min=0.5),
    default=30.0,
    show_default=True,
    help="Seconds between heartbeats.",
)
@click.option(
    "--realtime/--no-realtime",
    default=True,
    show_default=True,
    help="Play video files at their own pace (off: as fast as the node can analyse them).",
)
def run_command(
    config_file: Path, broker_url: str | None, duration_s: float | None, heartbeat_s: float, realtime: bool
) -> None:
    """Run the edge node: cameras, detector, analytics, outbox and MQTT until stopped (SIGTERM/SIGINT)."""
    from edge.node.runtime import NodeRuntime, RuntimeOptions  # heavy imports only when the node runs

    try:
        config = load_config(config_file)
        options = RuntimeOptions(heartbeat_s=heartbeat_s, broker_url=broker_url, realtime=realtime)
        runtime = NodeRuntime(config, config_path=config_file, options=options)
    except (ConfigError, ValueError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    runtime.install_signal_handlers()
    summary = runtime.run(duration_s)
    click.echo(
        f"stopped ({summary.stop_reason}): {summary.frames} frames, {summary.events} events, "
        f"{summary.heartbeats} heartbeats in {summary.wall_s:.1f} s"
    )
    if summary.pipeline_errors or summary.outbox_errors:
        sys.exit(2)
