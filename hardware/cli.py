"""`showroom hardware ...`: the installer's commands. Each lives in its own module, imported when it runs."""

from __future__ import annotations

from collections.abc import Callable

import click


def _plan() -> click.Command:
    from hardware.plan import plan_command

    return plan_command


def _profiles() -> click.Command:
    from hardware.profiles import profiles_command

    return profiles_command


def _provision() -> click.Command:
    from hardware.provision import provision_command

    return provision_command


def _broker_config() -> click.Command:
    from hardware.provision import broker_config_command

    return broker_config_command


def _calibrate() -> click.Command:
    from hardware.calibrate import calibrate_command

    return calibrate_command


def _uniform() -> click.Command:
    from hardware.uniform import uniform_command

    return uniform_command


def _commission() -> click.Command:
    from hardware.commission import commission_command

    return commission_command


def _walk_test() -> click.Command:
    from hardware.walk_test import walk_test_command

    return walk_test_command


COMMANDS: dict[str, Callable[[], click.Command]] = {
    "plan": _plan,
    "profiles": _profiles,
    "provision": _provision,
    "broker-config": _broker_config,
    "calibrate": _calibrate,
    "uniform": _uniform,
    "commission": _commission,
    "walk-test": _walk_test,
}
"""Command name -> its loader (the command's module is imported only when that command runs)."""


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        load = COMMANDS.get(cmd_name)
        return None if load is None else load()


@click.group("hardware", cls=_LazyGroup)
def hardware_group() -> None:
    """The installer's toolkit: hardware profiles, coverage plan, provisioning, calibration, commissioning."""
