"""A stack file's layers as the window lists them while torch is still loading: name, type, on/off.

Importing torch takes seconds; the window shows the stack at once from this outline, read with the
json module only, and takes the real stack (``stack.resolve``-checked, with its shapes) as soon as
torch is there. Nothing is validated here: a file the real loader refuses is reported then, with
the real loader's sentence. A test checks that this module never imports torch."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from explorer.core.resources import resource_path


@dataclass(frozen=True)
class LayerOutline:
    name: str
    type: str
    enabled: bool = True


@dataclass
class StackOutline:
    title: str                       # the file's name, or the example's
    layers: list[LayerOutline] = field(default_factory=list)
    description: str = ""


def _example_file(name: str) -> Path | None:
    try:
        entries = json.loads(resource_path("examples", "examples.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name and isinstance(entry.get("file"), str):
            return resource_path("examples", entry["file"])
    return None


def outline_stack(name_or_path: str | None) -> StackOutline | None:
    """The outline of STACK as the command line names it (a file, or a built-in example; None is
    the default example), or None when it cannot be read this simply."""
    if name_or_path is None:
        name_or_path = "default"
    path = Path(name_or_path)
    title = path.name
    if not path.is_file():
        path = _example_file(name_or_path)
        title = name_or_path
        if path is None:
            return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("layers", []), list):
        return None
    layers = []
    for raw in data.get("layers", []):
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            return None
        name = raw.get("name") if isinstance(raw.get("name"), str) else ""
        layers.append(LayerOutline(name, raw["type"], raw.get("enabled", True) is not False))
    description = data.get("description") if isinstance(data.get("description"), str) else ""
    return StackOutline(title, layers, description)
