"""The files a node configuration names, checked where the node will look for them (`check-config`).

`load_config` resolves them relative to the config file's folder; a camera's video file and reference
image are resolved the same way when the node starts. Secrets (the broker password, a TLS client key)
must be readable by their owner only.
"""

from __future__ import annotations

import stat
from pathlib import Path

from edge.config import NodeConfig, resolve_path
from edge.node.sources import source_kind


def _problem(path: Path, *, secret: bool = False, must_exist: bool = True) -> str | None:
    """Why `path` cannot be used, or None."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"{path} does not exist" if must_exist else None
    except OSError as exc:
        return f"{path}: cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return f"{path} is not a regular file"
    if secret and mode & 0o077:
        return f"{path} has mode {stat.S_IMODE(mode):04o}: others can read it; make it 0600 (chmod 600)"
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        return f"{path}: cannot read: {exc.strerror or exc}"
    return None


def file_problems(config: NodeConfig, config_file: Path) -> list[tuple[str, str]]:
    """(key path, message) for each file the config names that is missing, unreadable or, for a secret,
    readable by others. `config` comes from `load_config(config_file)` (its paths already resolved)."""
    checks: list[tuple[str, Path, bool, bool]] = []
    broker = config.broker
    if broker.password_file is not None:
        checks.append(("broker.password_file", broker.password_file, True, True))
    if broker.tls is not None:
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(broker.tls, name)
            if value is not None:
                checks.append((f"broker.tls.{name}", value, name == "key_file", True))
    if config.floor.image is not None:
        checks.append(("floor.image", config.floor.image, False, True))
    for i, cam in enumerate(config.cameras):
        if source_kind(cam.source) == "file":
            video = resolve_path(config_file, Path(cam.source.removeprefix("file:")))
            checks.append((f"cameras[{i}].source", video, False, True))
        if cam.reference_image is not None:
            # Missing is allowed: the first good frame is saved there.
            checks.append(
                (
                    f"cameras[{i}].reference_image",
                    resolve_path(config_file, cam.reference_image),
                    False,
                    False,
                )
            )
    problems = []
    for key, path, secret, must_exist in checks:
        found = _problem(path, secret=secret, must_exist=must_exist)
        if found is not None:
            problems.append((key, found))
    if broker.password_file is not None and not any(k == "broker.password_file" for k, _ in problems):
        text = broker.password_file.read_bytes()
        if not text.splitlines() or not text.splitlines()[0].strip():
            problems.append(
                ("broker.password_file", f"{broker.password_file}: empty (the password is its first line)")
            )
    return problems
