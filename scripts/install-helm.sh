#!/usr/bin/env bash
# Build the helm CLI from its Go module into a repo-local tools dir.
#   scripts/install-helm.sh            -> .tools/bin/helm (prints the path)
# Env: HELM_VERSION (default v3.22.0), HELM_BIN_DIR (default <repo>/.tools/bin),
#      GO (default: `go` on PATH, else /usr/local/go/bin/go).
# Idempotent: skips the build when the binary already reports the wanted version.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${HELM_BIN_DIR:-$repo_root/.tools/bin}"
helm_bin="$bin_dir/helm"

if [[ -x "$helm_bin" ]] && "$helm_bin" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  echo "$helm_bin"
  exit 0
fi

GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"; else GO=/usr/local/go/bin/go; fi
fi
[[ -x "$GO" ]] || { echo "install-helm.sh: Go toolchain not found (set GO=/path/to/go)" >&2; exit 1; }

mkdir -p "$bin_dir"
echo "install-helm.sh: building helm $HELM_VERSION with $("$GO" version) (takes a few minutes)" >&2
# Same -X flags as helm's own Makefile: without them `go install` reports version "v3.22"
# and a default Kubernetes version of v1.20 for `helm template`/`helm lint`.
# k8s version = client-go v0.N -> 1.N (helm v3.22.0 builds against client-go v0.37).
K8S_MINOR="${HELM_K8S_MINOR:-37}"
ldflags="-w -s -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${K8S_MINOR}"
done
GOBIN="$bin_dir" CGO_ENABLED=0 \
  "$GO" install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
"$helm_bin" version --short >&2
echo "$helm_bin"
