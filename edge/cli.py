"""`showroom edge`: the edge node's commands (config check, event schema, offline tracking, node runtime).

Registered as the `edge` entry of `showroom.commands` (pyproject.toml); the root command (`showroom.cli`)
finds it there like every other package's group.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge.config import ConfigError, load_config
from edge.events import json_schema


@click.group("edge")
def edge_group() -> None:
    """The edge node: configuration, offline tracking and the node runtime."""


@edge_group.command("check-config")
@click.argument("config_file", type=click.Path(path_type=Path))
def check_config(config_file: Path) -> None:
    """Validate a node configuration file, the files it names (password, TLS, floor plan, videos; secrets
    0600) and every camera's calibration pair by pair (each pair against a fit of the others): prints OK,
    or every problem with its key path (exit 1)."""
    # The calibration check needs cv2 and shapely: imported when the command runs, not by `showroom --help`.
    from edge.config_files import file_problems
    from edge.floor.calibration_check import calibration_problems, check_node_calibration

    try:
        cfg = load_config(config_file)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    reports = check_node_calibration(cfg)
    problems = file_problems(cfg, config_file) + calibration_problems(reports)
    if not problems and cfg.floor.areas:
        # A box of a store served by several: its cameras must see its zones and the overlap strip.
        from edge.floor.calibration import calibrate_node

        try:
            calibrate_node(cfg, str(config_file))
        except ConfigError as exc:
            problems = exc.problems
    if problems:
        click.echo(str(ConfigError(str(config_file), problems)), err=True)
        for report in reports:
            click.echo(report.summary(), err=True)
        sys.exit(1)
    click.echo(
        f"OK {config_file}: store {cfg.store_id}, node {cfg.node_id}, {len(cfg.cameras)} camera(s), "
        f"{len(cfg.doors)} door(s), {len(cfg.cars)} car(s)"
    )
    for report in reports:
        click.echo(report.summary())
        for warning in report.warnings:
            click.echo(f"  warning {report.key_path(warning.key)}: {warning.message}")


@edge_group.command("schema")
@click.option("--out", type=click.Path(path_type=Path), help="Write to this file instead of stdout.")
def schema(out: Path | None) -> None:
    """Print the JSON Schema of the event contract v1."""
    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")


def _add_offline_commands() -> None:
    from edge.offline import track_command

    edge_group.add_command(track_command)


def _register_node_commands() -> None:
    from edge.node.cli import run_command

    edge_group.add_command(run_command)


_add_offline_commands()
_register_node_commands()


__all__ = ["edge_group"]
