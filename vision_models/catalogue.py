"""Catalogues of validated YAML profiles shipped inside a package (edge box profiles, camera profiles)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any, Protocol, TypeVar


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


P = TypeVar("P", bound=_Identified)


def read_catalogue(
    package: str, folder: str, parse: Callable[[Any, str], P], error: type[Exception]
) -> dict[str, P]:
    """Every `*.yaml` in `package`/`folder`, parsed with `parse(data, source)`, by id (file-name order).

    Raises `error` naming the file when two profiles share an id; `parse` raises for a bad file."""
    import yaml

    profiles: dict[str, P] = {}
    for item in sorted(resources.files(package).joinpath(folder).iterdir(), key=lambda t: t.name):
        if not item.name.endswith(".yaml"):
            continue
        source = f"{package}/{folder}/{item.name}"
        profile = parse(yaml.safe_load(item.read_text(encoding="utf-8")), source)
        if profile.id in profiles:
            raise error(f"{source}: id: {profile.id!r} is used by another profile")
        profiles[profile.id] = profile
    return profiles
