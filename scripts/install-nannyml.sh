#!/usr/bin/env bash
# NannyML, the reference that driftline's CBPE is checked against, in a virtualenv of its own
# (it needs pandas 3, driftline's extras pin pandas 2), at the versions of
# tests/nannyml-constraints.txt. NannyML imports statsmodels without requiring it: installed too.
#   scripts/install-nannyml.sh         -> .venv-nannyml (prints its python's path)
# Env: NANNYML_VENV (default <repo>/.venv-nannyml), PYTHON (default python3).
# Idempotent: skips the install when the venv already has the pinned NannyML.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NANNYML_VENV:-$repo_root/.venv-nannyml}"
constraints="$repo_root/tests/nannyml-constraints.txt"
version="$(sed -n 's/^nannyml==//p' "$constraints")"
python="$venv/bin/python"

installed() { "$python" -m pip show nannyml 2>/dev/null | sed -n 's/^Version: //p'; }
if [[ -x "$python" ]] && [[ "$(installed)" == "$version" ]] && "$python" -c 'import statsmodels' 2>/dev/null; then
  echo "$python"
  exit 0
fi
echo "install-nannyml.sh: installing nannyml $version into $venv" >&2
[[ -x "$python" ]] || "${PYTHON:-python3}" -m venv "$venv"
"$python" -m pip install --quiet --upgrade pip >&2
"$python" -m pip install --quiet -c "$constraints" "nannyml==$version" statsmodels >&2
echo "$python"
