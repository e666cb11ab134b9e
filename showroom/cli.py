"""The `showroom` command line.

The root command discovers each package's command group through the `showroom.commands` entry points
(see pyproject.toml): `edge`, `aggregator`, `dashboard`, `models`, `sim` and `demo`. `showroom --help` lists
only what is installed, and a package's group is imported only when it is run.
"""

from __future__ import annotations

import json
import logging
import sys
from importlib.metadata import entry_points

import click

from edge import __version__


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


__all__ = ["main", "setup_logging"]
