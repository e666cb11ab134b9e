"""`showroom --help` lists only commands that work: every listed command answers its own --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from showroom.cli import main

SHOWROOM = Path(sys.executable).with_name("showroom")


def _walk(command: click.Command, ctx: click.Context, path: list[str]) -> list[list[str]]:
    found = [path]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"`showroom {' '.join([*path, name])}` is listed but cannot be loaded"
            found += _walk(sub, ctx, [*path, name])
    return found


def test_every_listed_command_loads_and_has_help() -> None:
    runner = CliRunner()
    with click.Context(main) as ctx:
        paths = _walk(main, ctx, [])
    assert ["edge", "check-config"] in paths
    for path in paths:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def test_installed_console_script_runs() -> None:
    result = subprocess.run(
        [str(SHOWROOM), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "edge" in result.stdout
    version = subprocess.run(
        [str(SHOWROOM), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert version.stdout.startswith("showroom, version")
