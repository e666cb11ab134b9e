"""Configuration mistakes an installer (or an attacker with the file) can make: each is named with its key
path or line by `check-config` and `stores load`, quickly, and never as a traceback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from edge.config import ConfigError, load_config
from showroom.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "showroom-shanghai-01.yaml"


def example_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    data["broker"].pop("tls")  # the box's CA bundle is not on this machine
    return data


def write(folder: Path, data: dict[str, Any], name: str = "node.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def check(path: Path) -> Result:
    r = CliRunner().invoke(main, ["edge", "check-config", str(path)])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    return r


def refused(path: Path, *expected: str) -> None:
    r = check(path)
    assert r.exit_code == 1, r.output
    for text in expected:
        assert text in r.output, r.output


def test_the_example_without_tls_is_ok(tmp_path: Path) -> None:
    r = check(write(tmp_path, example_data()))
    assert r.exit_code == 0 and r.output.startswith("OK"), r.output


def test_non_utf8_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, example_data())
    path.write_bytes(path.read_bytes().replace(b"node_id: node-a", b"node_id: n\xf6de-a"))
    refused(path, "not UTF-8", "line 2")


def test_a_duplicated_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, example_data())
    path.write_text(path.read_text() + "node_id: node-b\n")
    refused(path, "key 'node_id' appears twice (first on line 2)")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["broker"].update(url="mqtt://broker:99999"), "port 99999 is not between 1 and 65535"),
        (lambda d: d["broker"].update(url="mqtt://broker:0"), "port 0"),
        (lambda d: d["thresholds"].update(heat_cell_m=1e-9), "thresholds.heat_cell_m"),
        (lambda d: d["floor"].update(size_m=[1e9, 10]), "floor.size_m[0]"),
        (lambda d: d["outbox"].update(max_mb=1e12), "outbox.max_mb"),
        (lambda d: d["cameras"][0].update(resolution_wh=[10**9, 10]), "cameras[0].resolution_wh[0]"),
        (lambda d: d.update(cameras=d["cameras"] * 30), "cameras: List should have at most 64 items"),
        (
            lambda d: d["cars"][0].update(browse_zone_m=[[0.01 * i, 1 + 0.001 * i] for i in range(201)]),
            "cars[0].browse_zone_m: List should have at most 200 items",
        ),
    ],
)
def test_every_field_is_bounded(tmp_path: Path, mutate: Any, expected: str) -> None:
    data = example_data()
    data.setdefault("thresholds", {})
    data.setdefault("outbox", {})
    mutate(data)
    refused(write(tmp_path, data), expected)


def test_a_huge_polygon_is_refused_quickly(tmp_path: Path) -> None:
    path = write(tmp_path, example_data())
    points = ", ".join(f"[{i % 30}.5, {i % 20}.5]" for i in range(200_000))
    path.write_text(path.read_text() + f"staff_areas:\n  - id: huge\n    polygon_m: [{points}]\n")
    t0 = time.monotonic()
    refused(path, "over the 262144-byte limit")
    assert time.monotonic() - t0 < 5


def test_deep_nesting_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("store_id: " + "[" * 5000 + "]" * 5000 + "\n")
    refused(path, str(path))


def test_referenced_files_are_checked_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "node"
    folder.mkdir()
    data = example_data()
    data["broker"].pop("password_env")
    data["broker"]["password_file"] = "node.password"
    data["floor"]["image"] = "plan.png"
    data["cameras"][0]["source"] = "video/front.mp4"
    path = write(folder, data)
    monkeypatch.chdir(tmp_path)  # relative names are found beside the config, not here
    refused(
        path,
        f"broker.password_file: {folder / 'node.password'} does not exist",
        f"floor.image: {folder / 'plan.png'} does not exist",
        f"cameras[0].source: {folder / 'video/front.mp4'} does not exist",
    )
    (folder / "node.password").write_text("s3cret\n")
    (folder / "node.password").chmod(0o644)
    (folder / "plan.png").write_bytes(b"\x89PNG")
    (folder / "video").mkdir()
    (folder / "video" / "front.mp4").write_bytes(b"\x00")
    refused(path, "broker.password_file", "mode 0644", "chmod 600")
    (folder / "node.password").chmod(0o600)
    r = check(path)
    assert r.exit_code == 0 and "s3cret" not in r.output, r.output
    assert load_config(path).broker.password() == "s3cret"


def test_load_config_raises_config_error_for_every_file_mistake(tmp_path: Path) -> None:
    for content in (b"\xff\xfe", b"a: 1\na: 2\n", b"cameras: [\n", b"- 1\n- 2\n"):
        path = tmp_path / "c.yaml"
        path.write_bytes(content)
        with pytest.raises(ConfigError):
            load_config(path)


def test_the_registry_refuses_duplicates_and_non_utf8(tmp_path: Path) -> None:
    registry = tmp_path / "stores.yaml"
    registry.write_text(
        "stores:\n  - store_id: a\n    name: A\n    brand: b\n    region: r\n    timezone: UTC\n    name: B\n"
    )
    r = CliRunner().invoke(
        main, ["aggregator", "stores", "load", str(registry), "--db", str(tmp_path / "a.db")]
    )
    assert r.exit_code == 1 and "key 'name' appears twice" in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    registry.write_bytes(b"stores:\n  - store_id: \xe9\n")
    r = CliRunner().invoke(
        main, ["aggregator", "stores", "load", str(registry), "--db", str(tmp_path / "a.db")]
    )
    assert r.exit_code == 1 and "not UTF-8" in r.output and "Traceback" not in r.output
