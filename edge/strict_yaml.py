"""Reading a YAML file the strict way, for every configuration the product reads (node configs, the
stores registry): a key given twice is an error (PyYAML silently keeps the last one), the file is bounded
in size before it is parsed, and text that is not UTF-8 is reported with where it goes wrong.

Shared with the aggregator on purpose, so it imports nothing of ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

MAX_YAML_BYTES = 256 * 1024
"""Largest configuration file read (a large store's node config is a few tens of kilobytes)."""


class YamlFileError(ValueError):
    """A YAML file that cannot be read; `where` is `line L, column C` or `(file)`."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser: much faster, same rules


class _StrictLoader(_Base):  # type: ignore[misc]
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it
            if first is not None:
                raise ConstructorError(
                    None, None, f"key {key!r} appears twice (first on line {first + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def load_yaml_text(text: str) -> Any:
    """Parse YAML text strictly; `YamlFileError` says where and why it is not valid."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: builds no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise YamlFileError(where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise YamlFileError("(file)", "nested too deeply") from None


def load_yaml_file(path: Path, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Read and parse a YAML file strictly; `YamlFileError` for a missing, oversized (over `max_bytes`),
    non-UTF-8 or invalid file."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise YamlFileError("(file)", f"{size} bytes, over the {max_bytes}-byte limit")
        raw = path.read_bytes()
    except OSError as exc:
        raise YamlFileError("(file)", f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise YamlFileError(
            f"line {line}", f"not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start} (save as UTF-8)"
        ) from None
    return load_yaml_text(text)
