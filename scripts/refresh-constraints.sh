#!/usr/bin/env bash
# Refresh constraints.txt: resolve driftline with every extra into a throwaway virtualenv at
# the newest versions pyproject.toml allows, and pin what was installed.
#   scripts/refresh-constraints.sh        # then run scripts/test.sh and commit both if it passes
# The pins are what the README's commands, scripts/test.sh (.ci/run) and the Dockerfile
# install; `DRIFTLINE_LATEST=1 scripts/test.sh` runs the suite on the newest versions
# without the pins, to see whether a refresh would pass.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="$(mktemp -d)/venv"
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
extras="$(python3 -c "import tomllib; print(','.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']))")"
"$venv/bin/python" -m pip install --quiet ".[$extras]"
{
  echo "# Tested versions of driftline's dependencies and test tools, pinned for pip's -c."
  echo "# Made by scripts/refresh-constraints.sh on $(date -u +%Y-%m-%d) with Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())')."
  "$venv/bin/python" -m pip freeze --exclude driftline | LC_ALL=C sort -f
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pins" >&2
