"""The structure of service/: what import-linter cannot see ([tool.importlinter] checks imports).

The edges read the engine only through its views (``Engine.view``, ``views``, ``counters``,
``take_dirty``/``mark_dirty``/``mark_clean``), never through its lock, its models
or its set of changed models; no module is over 450 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE_INSIDES = {"lock", "models", "dirty"}
MAX_LINES = 450


def engine_insides_read(path: Path, root: Path = ROOT) -> list[str]:
    """``<...>engine.lock``, ``engine.models`` or ``engine.dirty`` in a module, by line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ENGINE_INSIDES:
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if name == "engine":
                found.append(f"{path.relative_to(root)}:{node.lineno}: engine.{node.attr}")
    return found


def test_the_edges_read_the_engine_only_through_its_views():
    edges = [path for path in sorted((ROOT / "service").rglob("*.py")) if "core" not in path.relative_to(ROOT).parts]
    assert len(edges) > 20  # the scan sees the package
    assert [hit for path in edges for hit in engine_insides_read(path)] == []


def test_the_scan_finds_what_it_looks_for(tmp_path):
    module = tmp_path / "edge.py"
    module.write_text("def f(runtime, engine):\n    with runtime.engine.lock:\n        return engine.models\n")
    assert engine_insides_read(module, tmp_path) == ["edge.py:2: engine.lock", "edge.py:3: engine.models"]


def test_no_module_is_over_450_lines():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines())
             for package in ("service", "detectors") for path in (ROOT / package).rglob("*.py")}
    assert {path: size for path, size in sizes.items() if size > MAX_LINES} == {}
