#!/usr/bin/env bash
# Set up a fresh machine and run every test: the README's second command, and what CI runs.
#   scripts/test.sh [pytest args...]
# Installs: the Python package with its test extras into .venv (building its native event
# decoder with the machine's Rust toolchain, whose own tests run too), Debian's prometheus and
# prometheus-alertmanager (promtool, amtool), Apache Kafka's jars (scripts/kafka.sh fetch),
# the helm CLI built from its Go module (scripts/install-helm.sh), Prometheus 3
# (prometheus3, promtool3) built from its Go module (scripts/install-prometheus3.sh): the rule
# tests and the dashboards' end-to-end test run on both majors, and NannyML in .venv-nannyml
# (scripts/install-nannyml.sh), the oracle of the CBPE parity tests. Tests start and stop the
# servers they need (Kafka, Prometheus, Alertmanager, MLflow, driftline) on loopback.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# rustup's cargo, where the login shell that puts it on PATH did not run.
[[ -d "$HOME/.cargo/bin" ]] && PATH="$HOME/.cargo/bin:$PATH"

# Python packages at the tested versions of constraints.txt; DRIFTLINE_LATEST=1 instead
# installs the newest versions pyproject.toml allows into .venv-latest, to try a refresh
# (scripts/refresh-constraints.sh) before making it.
venv=.venv pins=(-c constraints.txt)
if [[ "${DRIFTLINE_LATEST:-}" == 1 ]]; then
  venv=.venv-latest pins=(--upgrade --upgrade-strategy eager)
fi
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# grafana-client's niquests needs urllib3-future, whose wheel overwrites urllib3 in the venv
# (a .pth file rewrites site-packages/urllib3 at every start): schemathesis' requests transport
# then fails. Built from its sdist with URLLIB3_NO_OVERRIDE=1 it installs beside urllib3.
URLLIB3_NO_OVERRIDE=1 "$venv/bin/python" -m pip install --quiet --no-binary urllib3-future "${pins[@]}" -e '.[test]'
# The core install alone (no extras), with just pytest: tests/test_core_install.py runs the
# suite's core modules in it and checks that each extra-backed feature names its extra.
core="$venv-core"
[[ -x "$core/bin/python" ]] || python3 -m venv "$core"
"$core/bin/python" -m pip install --quiet --upgrade pip
"$core/bin/python" -m pip install --quiet "${pins[@]}" -e . pytest pytest-timeout
export DRIFTLINE_CORE_PYTHON="$PWD/$core/bin/python"
cargo test --quiet --release --manifest-path native/Cargo.toml
cargo test --quiet --release --manifest-path native/kernels/Cargo.toml
# The native decoder and drift-test kernels are optional for users (pip installs without them
# where there is no Rust); here the absence of either fails the tests that compare it with
# its Python counterpart.
export DRIFTLINE_NATIVE_REQUIRED=1

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
if (( ${#need_apt[@]} )); then
  sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The Debian package starts its own Prometheus on :9090; the tests run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus prometheus-node-exporter 2>/dev/null || true
fi

scripts/kafka.sh fetch
# Assigned apart from `export`, which would swallow a failed build's exit status.
HELM="$(scripts/install-helm.sh)"
export HELM
PROMETHEUS3_DIR="$(scripts/install-prometheus3.sh)"
export PROMETHEUS3_DIR
# NannyML in its own venv (pandas 3): the oracle of tests/detectors/test_cbpe_parity.py.
NANNYML_PYTHON="$(scripts/install-nannyml.sh)"
export NANNYML_PYTHON

# Static checks first, each failing the run on its own: lint (ruff, [tool.ruff]), the import
# contracts (import-linter, [tool.importlinter]: dependencies point inward), types (mypy,
# [tool.mypy]). ruff checks the modules mypy does ([tool.mypy] files) and the scripts and tests.
mapfile -t typed < <("$venv/bin/python" -c \
  'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["tool"]["mypy"]["files"], sep="\n")')
"$venv/bin/ruff" check tests benchmarks scripts "${typed[@]}"
"$venv/bin/lint-imports"
"$venv/bin/mypy"

exec "$venv/bin/python" -m pytest "$@"
