"""The package layering, enforced: every import of every module of the packages, against the allowed arrows.

Imports are read from the source (ast), so nothing is imported to check it: module-level imports, imports
inside functions (lazy, to save start-up time: still arrows), and `importlib.import_module("...")` or
`__import__("...")` calls. Our own modules are imported with import statements only; importlib would hide
an arrow from readers and from mypy, so it is refused for them (and a computed module name is refused
because it cannot be checked).

The allowed arrows (README, Architecture):

| package         | may import, besides itself and third-party libraries                   |
|-----------------|------------------------------------------------------------------------|
| `showroom`      | anything (the application: root CLI, demo, simulator truth, evaluation) |
| `dashboard`     | `aggregator`                                                           |
| `aggregator`    | `edge.events` (the contract), `edge.mqtt_common`, `edge.strict_yaml`   |
| `hardware`      | `edge` (config, floor, node sources, MQTT helpers), `vision_models`     |
| `edge`          | `vision_models`                                                        |
| `vision_models` | nothing of ours                                                        |

Nothing imports `showroom`; only `showroom` imports `dashboard`. Within `edge`: `edge.mqtt_common` imports
nothing of ours (so the aggregator depends on no more than it names), `edge.tracking` does not import
`edge.analytics` (nor the node or the pipeline that drive it), and `edge.analytics` is pure: no cv2 or
other pixel modules (frames, detections in image pixels, calibration, appearance crops).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("showroom", "dashboard", "aggregator", "hardware", "edge", "vision_models")

ALLOWED_ACROSS: dict[str, tuple[str, ...]] = {
    "showroom": PACKAGES,
    "dashboard": ("aggregator",),
    "aggregator": ("edge.events", "edge.mqtt_common", "edge.strict_yaml"),
    "hardware": ("edge", "vision_models"),
    "edge": ("vision_models",),
    "vision_models": (),
}
"""Per package: the other packages (or modules of them) it may import."""

# Within edge: (importer prefix, forbidden target prefixes, why).
WITHIN_EDGE: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("edge.mqtt_common", ("edge",), "shared with the aggregator, so it imports nothing of ours"),
    ("edge.strict_yaml", ("edge",), "shared with the aggregator, so it imports nothing of ours"),
    (
        "edge.tracking",
        ("edge.analytics", "edge.node", "edge.pipeline"),
        "tracking feeds the analytics and knows nothing of them",
    ),
    (
        "edge.analytics",
        (
            "edge.cues",
            "edge.floor",
            "edge.node",
            "edge.offline",
            "edge.pipeline",
            "edge.sim",
            "edge.sources",
        ),
        "analytics are pure: tracks in floor metres in, events out; no pixels, no I/O",
    ),
)
PIXEL_LIBRARIES = ("cv2", "PIL", "onnxruntime", "vision_models")
"""What `edge.analytics` must not import (with the pixel modules of edge above)..."""
TYPES_ONLY = ("vision_models.arrays",)
"""... except these: array and point type aliases, nothing that reads pixels."""


@dataclass(frozen=True)
class Import:
    path: str
    line: int
    importer: str
    target: str
    kind: str  # "module-level", "function-local" or "importlib"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} -> {self.target} ({self.kind})"


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    parts = importer.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def _import_call_target(node: ast.Call) -> tuple[str | None, bool]:
    """(module name, is an import call) of `importlib.import_module`, `import_module` or `__import__`."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in ("import_module", "__import__"):
        return None, False
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value, True
    return None, True


def imports_of(source: str, importer: str, path: str, *, is_package: bool = False) -> Iterator[Import]:
    """Every import in `source` (the module `importer`, file `path`), with its line and kind."""
    tree = ast.parse(source, filename=path)

    def visit(node: ast.AST, in_function: bool) -> Iterator[Import]:
        kind = "function-local" if in_function else "module-level"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, importer, alias.name, kind)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(importer, is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            for alias in node.names:
                # `from edge import pipeline` imports edge.pipeline; `from edge.config import X` is checked
                # as edge.config.X, which every rule on edge.config covers.
                target = base if alias.name == "*" else f"{base}.{alias.name}"
                yield Import(path, node.lineno, importer, target, kind)
        elif isinstance(node, ast.Call):
            target, is_import = _import_call_target(node)
            if is_import:
                yield Import(path, node.lineno, importer, target or "<computed name>", "importlib")
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, inside)

    yield from visit(tree, False)


def violation(imp: Import) -> str | None:
    """Why this import breaks the layering, or None when it is allowed."""
    importer, target = imp.importer, imp.target
    src, dst = importer.split(".")[0], target.split(".")[0]
    ours = dst in PACKAGES
    if imp.kind == "importlib" and (ours or target == "<computed name>"):
        return "our modules are imported with an import statement, not importlib (it hides the arrow)"
    if (
        _within(importer, "edge.analytics")
        and dst in PIXEL_LIBRARIES
        and not any(_within(target, t) for t in TYPES_ONLY)
    ):
        return "edge.analytics must not import cv2 or other pixel modules (analytics are pure)"
    if not ours:
        return None
    if src == dst:
        if src == "edge":
            for prefix, forbidden, why in WITHIN_EDGE:
                if _within(importer, prefix) and any(_within(target, f) for f in forbidden):
                    return f"{prefix} must not import {target.rsplit('.', 1)[0]}: {why}"
        return None
    if dst == "showroom":
        return "nothing imports showroom (the application on top)"
    if dst == "dashboard" and src != "showroom":
        return "only showroom imports dashboard"
    allowed = ALLOWED_ACROSS[src]
    if any(_within(target, a) for a in allowed):
        return None
    names = ", ".join(allowed) or "nothing of ours"
    return f"{src} may import only {names}"


def package_modules() -> Iterator[tuple[Path, str, bool]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            is_package = rel.name == "__init__"
            parts = rel.parts[:-1] if is_package else rel.parts
            yield path, ".".join(parts), is_package


def all_imports() -> list[Import]:
    found = []
    for path, module, is_package in package_modules():
        rel = str(path.relative_to(REPO))
        found.extend(imports_of(path.read_text(encoding="utf-8"), module, rel, is_package=is_package))
    return found


def test_every_import_follows_the_allowed_arrows() -> None:
    imports = all_imports()
    assert len(imports) > 300, "the checker found suspiciously few imports"
    broken = [f"{imp}: {why}" for imp in imports if (why := violation(imp))]
    assert not broken, "imports against the layering (README, Architecture):\n" + "\n".join(broken)


# ---------------------------------------------------------------------------------------------------
# The checker itself: it must catch each arrow that was once broken, in each form an import can take.
# ---------------------------------------------------------------------------------------------------


def _forms(target: str) -> dict[str, str]:
    parent, _, name = target.rpartition(".")
    return {
        "module-level": f"import {target}\n",
        "module-level from": f"from {parent or target} import {name or '*'}\n",
        "function-local": f"def run() -> None:\n    from {parent or target} import {name or '*'}\n",
        "method-local": f"class A:\n    def m(self) -> None:\n        import {target}\n",
        "importlib": f"import importlib\n\ndef load() -> None:\n    importlib.import_module({target!r})\n",
        "import_module": f"from importlib import import_module\n\nmod = import_module({target!r})\n",
        "__import__": f"def load() -> None:\n    __import__({target!r})\n",
    }


ONCE_BROKEN = [
    ("edge.sim.demo", "aggregator.ingest"),
    ("edge.sim.demo", "dashboard.auth"),
    ("edge.sim.evaluate", "aggregator.storage"),
    ("aggregator.mqtt", "edge.node.mqtt"),
    ("aggregator.registry", "edge.config"),
    ("edge.cli", "showroom.cli"),
    ("edge.node.runtime", "showroom.sim.evaluate"),
    ("aggregator.api", "dashboard.ui"),
    ("vision_models.detector", "edge.events"),
    ("edge.node.runtime", "hardware"),
    ("hardware.commission", "aggregator.mqtt"),
    ("edge.tracking.floor_kalman", "edge.analytics.zones"),
    ("edge.analytics.staff", "cv2"),
    ("edge.analytics.zones", "vision_models.detections"),
    ("edge.mqtt_common", "edge.config"),
]


@pytest.mark.parametrize(("importer", "target"), ONCE_BROKEN)
def test_the_checker_refuses_each_forbidden_arrow_in_every_form(importer: str, target: str) -> None:
    for form, source in _forms(target).items():
        found = list(imports_of(source, importer, "x.py"))
        assert found, form
        assert any(violation(imp) for imp in found), f"{form} of {importer} -> {target} passed:\n{source}"


@pytest.mark.parametrize(
    ("importer", "target"),
    [
        ("edge.node.runtime", "edge.pipeline"),
        ("edge.node.runtime", "vision_models.detector"),
        ("edge.node.sources", "edge.sim.source"),
        ("showroom.sim.evaluate", "edge.pipeline"),
    ],
)
def test_the_checker_refuses_importlib_even_where_the_arrow_is_allowed(importer: str, target: str) -> None:
    plain = {k: v for k, v in _forms(target).items() if "import" not in k or k.startswith("module-level")}
    for form, source in plain.items():
        assert not any(violation(i) for i in imports_of(source, importer, "x.py")), form
    for form in ("importlib", "import_module", "__import__"):
        found = list(imports_of(_forms(target)[form], importer, "x.py"))
        assert any(violation(imp) for imp in found), form
    computed = "import importlib\n\nname = 'edge'\nimportlib.import_module(name)\n"
    assert any(violation(i) for i in imports_of(computed, importer, "x.py"))


@pytest.mark.parametrize(
    ("importer", "target"),
    [
        ("showroom.demo", "aggregator.ingest"),
        ("showroom.demo", "dashboard.auth"),
        ("showroom.sim.evaluate", "edge.pipeline"),
        ("dashboard.ui", "aggregator.queries"),
        ("aggregator.mqtt", "edge.events"),
        ("aggregator.mqtt", "edge.mqtt_common"),
        ("edge.node.runtime", "vision_models.detector"),
        ("hardware.plan", "edge.config"),
        ("edge.analytics.showroom", "edge.tracking.base"),
        ("edge.analytics.zones", "vision_models.arrays"),
        ("edge.tracking.floor_kalman", "numpy"),
    ],
)
def test_the_checker_allows_the_allowed_arrows(importer: str, target: str) -> None:
    for form in ("module-level", "module-level from", "function-local", "method-local"):
        found = list(imports_of(_forms(target)[form], importer, "x.py"))
        assert not [str(i) for i in found if violation(i)], form


def test_the_checker_resolves_relative_imports() -> None:
    found = list(imports_of("from ..analytics import zones\n", "edge.tracking.base", "x.py"))
    assert [i.target for i in found] == ["edge.analytics.zones"]
    assert violation(found[0])
    found = list(imports_of("from . import base\n", "edge.tracking", "x.py", is_package=True))
    assert [i.target for i in found] == ["edge.tracking.base"]
    assert found[0].line == 1 and found[0].kind == "module-level"


def test_a_failure_names_the_file_the_line_and_the_arrow() -> None:
    source = "import json\n\n\ndef f() -> None:\n    from aggregator.ingest import Ingestor\n"
    (imp,) = [i for i in imports_of(source, "edge.sim.demo", "edge/sim/demo.py") if violation(i)]
    assert str(imp) == "edge/sim/demo.py:5: edge.sim.demo -> aggregator.ingest.Ingestor (function-local)"
    assert violation(imp) == "edge may import only vision_models"
