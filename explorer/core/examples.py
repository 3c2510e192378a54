"""The built-in example stacks in resources/examples, each a classic tutorial step."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from explorer.core.resources import resource_path

if TYPE_CHECKING:
    from explorer.core.stack import Stack
# explorer.core.stack (and torch with it) is imported where a stack is loaded: the command line
# lists the examples, and tells a window's STACK from a command, without waiting for torch.


@dataclass(frozen=True)
class Example:
    name: str
    file: str
    description: str
    sample: str          # a built-in sample it runs on
    cifar: bool = False  # made for a CIFAR-10 batch

    @property
    def path(self) -> Path:
        return resource_path("examples", self.file)


def examples() -> list[Example]:
    entries = json.loads(resource_path("examples", "examples.json").read_text(encoding="utf-8"))
    return [Example(**entry) for entry in entries]


def list_examples() -> list[tuple[str, str]]:
    return [(e.name, e.description) for e in examples()]


def find_example(name: str) -> Example | None:
    return next((e for e in examples() if e.name == name), None)


def load_example(name: str) -> Stack:
    from explorer.core.stack import StackError, load_stack
    example = find_example(name)
    if example is None:
        raise StackError(f"There is no built-in example '{name}'; the examples are: {', '.join(e.name for e in examples())}.")
    return load_stack(example.path)


def resolve_stack(name_or_path: str) -> Stack:
    """STACK on the command line: a file path, or the name of a built-in example."""
    from explorer.core.stack import StackError, load_stack
    path = Path(name_or_path)
    if path.exists():
        return load_stack(path)
    if find_example(name_or_path) is not None:
        return load_example(name_or_path)
    if path.suffix.lower() == ".json" or len(path.parts) > 1:
        return load_stack(path)     # says the file does not exist
    raise StackError(f"'{name_or_path}' is neither a stack file nor a built-in example "
                     f"(examples: {', '.join(e.name for e in examples())}).")
