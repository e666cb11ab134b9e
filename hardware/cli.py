"""`showroom hardware ...`: the installer's commands. Each lives in its own module, loaded when it runs."""

from __future__ import annotations

from importlib import import_module

import click

COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("hardware.plan", "plan_command"),
    "profiles": ("hardware.profiles", "profiles_command"),
    "provision": ("hardware.provision", "provision_command"),
    "broker-config": ("hardware.provision", "broker_config_command"),
    "calibrate": ("hardware.calibrate", "calibrate_command"),
    "uniform": ("hardware.uniform", "uniform_command"),
    "commission": ("hardware.commission", "commission_command"),
    "walk-test": ("hardware.walk_test", "walk_test_command"),
}
"""Command name -> (module, click command in it). The modules are the installer package's own."""


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr = COMMANDS[cmd_name]
        command = getattr(import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group("hardware", cls=_LazyGroup)
def hardware_group() -> None:
    """The installer's toolkit: hardware profiles, coverage plan, provisioning, calibration, commissioning."""
