#!/usr/bin/env bash
# Build Prometheus 3 (prometheus and promtool) from its Go module into a repo-local tools dir,
# so that the rule tests and the dashboards' end-to-end test also run against the major that
# kube-prometheus-stack deploys (Debian's packages are Prometheus 2).
#   scripts/install-prometheus3.sh     -> .tools/bin/prometheus3, .tools/bin/promtool3
#                                         (prints the directory)
# Env: PROMETHEUS3_MODULE_VERSION (default v0.316.0, the module version of Prometheus 3.16.0),
#      PROMETHEUS3_DIR (default <repo>/.tools/bin; the tests read the same variable),
#      GO (default: `go` on PATH, else /usr/local/go/bin/go).
# Idempotent: skips the build when both binaries already report the wanted version.
# Built without the web UI's assets (the `builtinassets` tag): the tests use only the HTTP API.
set -euo pipefail

MODULE=github.com/prometheus/prometheus
MODULE_VERSION="${PROMETHEUS3_MODULE_VERSION:-v0.316.0}"
# Module v0.3MM.P is Prometheus 3.MM.P (the project's tags for Go module consumers).
[[ "$MODULE_VERSION" =~ ^v0\.3([0-9][0-9])\.([0-9]+)$ ]] || {
  echo "install-prometheus3.sh: $MODULE_VERSION is not a Prometheus 3 module version (v0.3MM.P)" >&2; exit 1; }
VERSION="3.$((10#${BASH_REMATCH[1]})).${BASH_REMATCH[2]}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${PROMETHEUS3_DIR:-$repo_root/.tools/bin}"

reports_version() {  # reports_version BINARY: true when BINARY --version names $VERSION
  [[ -x "$1" ]] && "$1" --version 2>/dev/null | head -1 | grep -q "version $VERSION "
}
if reports_version "$bin_dir/prometheus3" && reports_version "$bin_dir/promtool3"; then
  echo "$bin_dir"
  exit 0
fi

GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"; else GO=/usr/local/go/bin/go; fi
fi
[[ -x "$GO" ]] || { echo "install-prometheus3.sh: Go toolchain not found (set GO=/path/to/go)" >&2; exit 1; }

echo "install-prometheus3.sh: building Prometheus $VERSION ($MODULE@$MODULE_VERSION) with $("$GO" version)" \
  "(about 13 minutes of CPU time)" >&2
module_dir="$(cd / && GOWORK=off GOFLAGS=-mod=mod "$GO" mod download -json "$MODULE@$MODULE_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -n "$module_dir" && -f "$module_dir/go.mod" ]] || {
  echo "install-prometheus3.sh: go mod download gave no module directory" >&2; exit 1; }
# The module cache is read-only, and the module's go.work names directories that the module
# zip leaves out, so build from a writable copy without it.
src="$(mktemp -d)"
trap 'chmod -R u+w "$src" && rm -rf "$src"' EXIT
cp -R "$module_dir/." "$src"
chmod -R u+w "$src"
rm -f "$src/go.work" "$src/go.work.sum"

mkdir -p "$bin_dir"
ldflags="-X github.com/prometheus/common/version.Version=$VERSION"
ldflags+=" -X github.com/prometheus/common/version.Revision=$MODULE_VERSION"
ldflags+=" -X github.com/prometheus/common/version.Branch=module"
for cmd in promtool prometheus; do
  (cd "$src" && GOWORK=off CGO_ENABLED=0 "$GO" build -tags netgo -ldflags "$ldflags" \
    -o "$bin_dir/${cmd}3" "./cmd/$cmd")
  reports_version "$bin_dir/${cmd}3" || {
    echo "install-prometheus3.sh: $bin_dir/${cmd}3 does not report version $VERSION" >&2; exit 1; }
done
"$bin_dir/prometheus3" --version | head -1 >&2
echo "$bin_dir"
