"""The `showroom` command line.

The root command discovers each package's command group through the `showroom.commands` entry points
(see pyproject.toml), so packages stay independent and `showroom --help` lists only what is installed.
This module holds the root and the `edge` group.
"""

from __future__ import annotations

import json
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click

from edge import __version__
from edge.config import ConfigError, load_config
from edge.events import json_schema

log = logging.getLogger(__name__)


class _PluginGroup(click.Group):
    """A click group whose sub-groups come from the `showroom.commands` entry points, loaded lazily."""

    def _plugins(self) -> dict[str, str]:
        return {ep.name: ep.value for ep in entry_points(group="showroom.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        for ep in entry_points(group="showroom.commands", name=cmd_name):
            loaded = ep.load()
            if isinstance(loaded, click.Command):
                return loaded
        return None


def setup_logging(level: str, fmt: str = "text") -> None:
    """Plain text for people, one JSON object per line for fleet log collectors."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


@click.group(cls=_PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="showroom")
@click.option("--log-level", default="info", show_default=True, help="debug, info, warning or error.")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Log format."
)
def main(log_level: str, log_format: str) -> None:
    """Showroom Vision: edge computer vision for car showrooms."""
    setup_logging(log_level, log_format)


@click.group("edge")
def edge_group() -> None:
    """The edge node: configuration, offline tracking and the node runtime."""


@edge_group.command("check-config")
@click.argument("config_file", type=click.Path(path_type=Path))
def check_config(config_file: Path) -> None:
    """Validate a node configuration file: prints OK, or every problem with its key path (exit 1)."""
    try:
        cfg = load_config(config_file)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(
        f"OK {config_file}: store {cfg.store_id}, node {cfg.node_id}, {len(cfg.cameras)} camera(s), "
        f"{len(cfg.doors)} door(s), {len(cfg.cars)} car(s)"
    )


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


main.add_command(edge_group)


def _add_offline_commands() -> None:
    from edge.offline import track_command

    edge_group.add_command(track_command)


def _register_node_commands() -> None:
    from edge.node.cli import run_command

    edge_group.add_command(run_command)


_add_offline_commands()
_register_node_commands()
