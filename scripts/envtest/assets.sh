#!/usr/bin/env bash
# Prints the directory that holds the envtest control plane's binaries
# (kube-apiserver and etcd), building them first when they are not there yet.
#
#   scripts/envtest/assets.sh           build if missing, then print the dir
#   scripts/envtest/assets.sh --check   print the dir, or fail if not built
#
# KUBEBUILDER_ASSETS, when set, names a directory of ready binaries (such as
# the envtest releases people download); it is used as it is and nothing is
# built. Otherwise the binaries are built from the wrapper modules beside this
# script into ~/.cache/groupchat/envtest/<versions>/, outside the clone, so a
# fresh clone on the same machine reuses them and only a new machine pays for
# the build (about half an hour of CPU on two cores).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mode="${1:-build}"

require() { [[ -x "$1/kube-apiserver" && -x "$1/etcd" ]]; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  require "$KUBEBUILDER_ASSETS" || { echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no kube-apiserver and etcd" >&2; exit 1; }
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

# The versions come from the wrapper modules, so the cache key changes with them.
version_of() { awk -v m="$2" '$1 == "require" && $2 == m { print $3 } $1 == m && $2 ~ /^v/ { print $2 }' "$here/$1/go.mod" | head -n1; }
k8s="$(version_of kube-apiserver k8s.io/kubernetes)"
etcd="$(version_of etcd go.etcd.io/etcd/server/v3)"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/groupchat/envtest/k8s-${k8s}_etcd-${etcd}"

# A Kubernetes binary built from the module reports v0.0.0-master unless the
# version is stamped in at link time, and clients such as helm check it (a
# chart's kubeVersion), so the cache only counts when it reports $k8s.
versioned() { require "$1" && "$1/kube-apiserver" --version 2>/dev/null | grep -qF " $k8s"; }
minor="${k8s#v*.}"; minor="${minor%%.*}"
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

if versioned "$dir"; then echo "$dir"; exit 0; fi
if [[ "$mode" == "--check" ]]; then
  echo "envtest binaries are not built yet ($dir): run 'make envtest'" >&2
  exit 1
fi

command -v go >/dev/null || { echo "building the envtest binaries needs Go" >&2; exit 1; }
mkdir -p "$dir"
staging="$(mktemp -d "$dir.build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
# Static, stripped binaries; niced because the machines are small and shared.
build() {
  echo "building $2 ($1) into $dir" >&2
  (cd "$here/$1" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="-s -w ${4:-}" -o "$staging/$2" "$3")
}
build kube-apiserver kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$version_flags"
build etcd etcd .
# Move into place only when both are built, so an interrupted build is redone.
mv "$staging/kube-apiserver" "$staging/etcd" "$dir/"
echo "$dir"
