"""bicep/ as data: every ``.bicep`` file parsed with pycep-parser, and walkers over the trees.

The Bicep CLI cannot be installed on the development machines (it downloads itself), so
the tests parse the files with pycep-parser and check what a parse tree can show; the
cloud workflow (``.github/workflows/bicep.yml``) compiles and lints them.

How pycep-parser 0.7.1 represents a file (``BicepParser().parse``): a dict with
``parameters``, ``variables``, ``resources``, ``modules`` and ``outputs``, each by symbolic
name. A resource is ``{"type", "api_version", "existing", "config"}``; ``config`` is the
resource body, or, for ``= if (…)`` and ``[for …]``, a wrapper ``{"condition",
"loop_type", "config": body}``. Nested ``existing`` children appear as ``parent__child``.
Identifiers and string literals both come out as ``str`` (``tags: tags`` gives
``"tags"``); expressions are ``{"operator": …}`` or ``{"function": …}`` dicts. It does
not read ``.bicepparam`` files (see ``test_bicepparam.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
BICEP = ROOT / "bicep"
MAIN = BICEP / "main.bicep"
MODULES = BICEP / "modules"

__all__ = [
    "BICEP",
    "MAIN",
    "MODULES",
    "ROOT",
    "Resource",
    "bicep_files",
    "body",
    "description",
    "parse",
    "parse_text",
    "resources",
    "walk",
]


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    """The parse tree of one file (cached: a session parses each file once)."""
    tree: dict[str, Any] = BicepParser().parse(file_path=path)
    return tree


def parse_text(text: str) -> dict[str, Any]:
    """The parse tree of Bicep source; raises on a syntax error."""
    tree: dict[str, Any] = BicepParser().parse(text=text)
    return tree


def bicep_files() -> list[Path]:
    """Every ``.bicep`` file under ``bicep/``."""
    return sorted(BICEP.rglob("*.bicep"))


def body(config: Any) -> dict[str, Any]:
    """A resource's or module's body, out of its ``if``/``for`` wrapper."""
    while (
        isinstance(config, dict)
        and "config" in config
        and ("condition" in config or "loop_type" in config)
    ):
        config = config["config"]
    assert isinstance(config, dict), config
    return config


@dataclass(frozen=True)
class Resource:
    """One resource declaration."""

    file: Path
    symbol: str
    type: str
    api_version: str
    existing: bool
    config: dict[str, Any]

    @property
    def body(self) -> dict[str, Any]:
        return body(self.config)

    @property
    def condition(self) -> Any:
        """The ``if (…)`` expression (inside a loop too), or None."""
        return self.config.get("condition") if "config" in self.config else None

    @property
    def is_top_level(self) -> bool:
        """A tracked resource of its own (``Namespace/type``), not a child."""
        return self.type.count("/") == 1


def resources(path: Path, *, existing: bool = False) -> list[Resource]:
    """The resources a file declares (``existing`` references only if asked for)."""
    found = [
        Resource(path, symbol, r["type"], r["api_version"], r["existing"], r["config"])
        for symbol, r in parse(path).get("resources", {}).items()
    ]
    return [r for r in found if existing or not r.existing]


def description(declaration: dict[str, Any]) -> str | None:
    """The ``@description`` of a parameter or output."""
    for decorator in declaration.get("decorators", []):
        if decorator.get("type") == "description":
            argument = decorator.get("argument")
            return argument if isinstance(argument, str) else None
    return None


def walk(value: Any) -> Iterator[Any]:
    """Every value nested in a parse tree, depth first (the value itself first)."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)
