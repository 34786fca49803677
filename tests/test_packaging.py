"""What pyproject.toml declares of the installed package is what the tree holds."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_declared_package_data_file_exists():
    for package, patterns in SETUPTOOLS["package-data"].items():
        directory = ROOT.joinpath(*package.split("."))
        for pattern in patterns:
            assert list(directory.glob(pattern)), f"[tool.setuptools.package-data] {package}: no {pattern}"


def test_every_package_of_the_tree_is_installed():
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for top in ("service", "detectors") for init in (ROOT / top).rglob("__init__.py")}
    assert found == set(SETUPTOOLS["packages"]), "[tool.setuptools] packages"
