#!/usr/bin/env bash
# Prints the directory that holds the e2e control plane's extra binaries
# (kube-controller-manager and kube-scheduler), building them first when they
# are not there yet. kube-apiserver and etcd come from scripts/envtest/assets.sh.
#
#   scripts/e2e/assets.sh           build if missing, then print the dir
#   scripts/e2e/assets.sh --check   print the dir, or fail if not built
#
# KUBEBUILDER_ASSETS, when it names a directory that also holds
# kube-controller-manager and kube-scheduler, is used as it is. Otherwise both
# are built from the wrapper module beside this script (the same k8s.io/kubernetes
# version the envtest apiserver is built from) into
# ~/.cache/groupchat/e2e/k8s-<version>/, outside the clone, so a fresh clone on
# the same machine reuses them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mode="${1:-build}"

require() { [[ -x "$1/kube-controller-manager" && -x "$1/kube-scheduler" ]]; }
# Stamped with their version at link time, as scripts/envtest/assets.sh does for kube-apiserver.
versioned() { require "$1" && "$1/kube-scheduler" --version 2>/dev/null | grep -qF " $k8s"; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && require "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

k8s="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2 }' "$here/kube-controllers/go.mod" | head -n1)"
[[ -n "$k8s" ]] || { echo "no k8s.io/kubernetes version in $here/kube-controllers/go.mod" >&2; exit 1; }
dir="${XDG_CACHE_HOME:-$HOME/.cache}/groupchat/e2e/k8s-${k8s}"

minor="${k8s#v*.}"; minor="${minor%%.*}"
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

if versioned "$dir"; then echo "$dir"; exit 0; fi
if [[ "$mode" == "--check" ]]; then
  echo "e2e control-plane binaries are not built yet ($dir): run 'make e2e-assets'" >&2
  exit 1
fi

command -v go >/dev/null || { echo "building kube-controller-manager and kube-scheduler needs Go" >&2; exit 1; }
mkdir -p "$dir"
staging="$(mktemp -d "$dir.build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
build() {
  echo "building $1 ($k8s) into $dir" >&2
  (cd "$here/kube-controllers" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="-s -w $version_flags" -o "$staging/$1" "k8s.io/kubernetes/cmd/$1")
}
build kube-controller-manager
build kube-scheduler
mv "$staging/kube-controller-manager" "$staging/kube-scheduler" "$dir/"
echo "$dir"
