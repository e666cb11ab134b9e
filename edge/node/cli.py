"""`showroom edge run`: the node appliance's command (registered on the `edge` group)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from edge.config import ConfigError, load_config
from vision_models.registry import ModelError

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
@click.option(
    "--check", is_flag=True, help="Verify config, credentials, calibration, model and outbox, then exit."
)
def run_command(
    config_file: Path,
    broker_url: str | None,
    duration_s: float | None,
    heartbeat_s: float,
    realtime: bool,
    check: bool,
) -> None:
    """Run the edge node: cameras, detector, analytics, outbox and MQTT until stopped (SIGTERM/SIGINT)."""
    # Heavy imports only when the node runs.
    from edge.node.outbox import OutboxError
    from edge.node.runtime import NodeRuntime, RuntimeOptions

    try:
        config = load_config(config_file)
        options = RuntimeOptions(heartbeat_s=heartbeat_s, broker_url=broker_url, realtime=realtime)
        runtime = NodeRuntime(config, config_path=config_file, options=options)
    except (ConfigError, ValueError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    if check:
        try:
            lines = runtime.check()
        except (ConfigError, ModelError, OutboxError) as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        click.echo("\n".join(lines) + f"\nOK {config_file}")
        return
    runtime.install_signal_handlers()
    try:
        summary = runtime.run(duration_s)
    except (ConfigError, ModelError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(
        f"stopped ({summary.stop_reason}): {summary.frames} frames, {summary.events} events, "
        f"{summary.heartbeats} heartbeats in {summary.wall_s:.1f} s"
    )
    if summary.pipeline_errors or summary.outbox_errors:
        sys.exit(2)
