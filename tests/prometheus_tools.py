"""The Prometheus binaries the tests run, for both majors in use.

Prometheus 2 is Debian's package (``prometheus``, ``promtool`` on PATH); Prometheus 3, which
kube-prometheus-stack deploys, is built by scripts/install-prometheus3.sh into
``$PROMETHEUS3_DIR`` (default ``.tools/bin``) as ``prometheus3`` and ``promtool3``.
A missing binary skips its tests locally and fails them under CI (env CI set), as
:func:`tests.conftest.require_tool` does for every tool.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
MAJORS = ("2", "3")
HOW_TO_INSTALL = {
    "2": "apt install prometheus (Debian's Prometheus 2)",
    "3": "scripts/install-prometheus3.sh (builds Prometheus 3 into .tools/bin; "
         "or set PROMETHEUS3_DIR to a directory holding prometheus3 and promtool3)",
}


def _candidate(name: str, major: str) -> str | None:
    if major == "2":
        return shutil.which(name)
    path = Path(os.environ.get("PROMETHEUS3_DIR") or ROOT / ".tools" / "bin") / f"{name}3"
    return str(path) if path.is_file() else None


@cache
def _reported_version(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"version (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    return match.group(1) if match else ""


def binary(name: str, major: str) -> str:
    """Path of ``prometheus`` or ``promtool`` of Prometheus ``major``, checked by its --version.

    Skips the calling test when there is none, except under CI, where that fails it.
    """
    path = _candidate(name, major)
    if path is None:
        return require_tool(f"{name} of Prometheus {major}", None, HOW_TO_INSTALL[major])
    version = _reported_version(path)
    return require_tool(f"{name} of Prometheus {major}", version.split(".")[0] == major and path,
                        f"{path} reports version {version or '?'}; {HOW_TO_INSTALL[major]}")


def on_path(*names: str, install: str) -> str:
    """The first of ``names`` on PATH (as :func:`binary`: skips locally, fails under CI)."""
    return require_tool(" or ".join(names), next(filter(None, map(shutil.which, names)), None), install)
